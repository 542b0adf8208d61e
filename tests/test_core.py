"What every module shares: errors, vocabularies, the split, rmse, threads, the warnings the package silences."
import math
import pandas as pd, pytest, torch
from fastai.data.transforms import RandomSplitter
from ajtfb_collab.core import (CollabError, BadValueError, UnknownNameError, TooLargeError, random_split, encode, rmse, threads,
                               check_split, y_range_for, TrainRecipe)


@pytest.mark.parametrize('n,pct,seed', [(100, 0.2, 42), (1001, 0.1, 7)])
def test_random_split_is_fastais(n, pct, seed):
    trn, val = RandomSplitter(pct, seed=seed)(list(range(n)))
    t, v = random_split(n, pct, seed)
    assert list(t) == list(trn) and list(v) == list(val)


def test_encode_sorted_with_na_and_unknown_zero():
    codes, classes = encode(pd.Series(['b', 'a', 'b']))
    assert classes == ['#na#', 'a', 'b'] and codes.tolist() == [2, 1, 2]
    assert encode(pd.Series(['a', 'zzz']), classes)[0].tolist() == [1, 0]


def test_rmse_clips_only_to_a_scale_it_is_given():
    assert math.isclose(rmse([0, 6, 3], [1, 5, 4]), math.sqrt((1 + 1 + 1) / 3))  # no default scale: nothing clipped
    assert math.isclose(rmse([0, 6, 3], [1, 5, 4], clip=(1, 5)), math.sqrt(1 / 3))  # 0 and 6 clipped to 1 and 5
    assert math.isclose(rmse([0.2, 5.4], [0.5, 5.0], clip=(0.5, 5.0)), 0.0)  # half stars: clipped to 0.5..5


def test_errors_are_ours_and_the_builtin_ones():
    for err, builtin in [(UnknownNameError, KeyError), (BadValueError, ValueError), (TooLargeError, MemoryError)]:
        with pytest.raises(builtin): raise err('x')
        assert issubclass(err, CollabError)
    assert str(UnknownNameError("unknown title 'x'")) == "unknown title 'x'"  # not quoted, as a KeyError would be


def test_split_needs_a_rating_on_each_side_and_recipes_derive():
    check_split(5, 0.2)
    with pytest.raises(BadValueError, match='4 rating'): check_split(4, 0.2)
    assert y_range_for(pd.Series([0.5, 5.0])) == (-0.625, 5.5625)
    r = TrainRecipe('r', None, None, epochs=2, lr=1e-2, learner_kwargs=dict(n_factors=4))
    assert r.but(n_factors=8, epochs=3).learner_kwargs == {'n_factors': 8} and r.but(epochs=3).epochs == 3


def test_threads_restores_the_count():
    before = torch.get_num_threads()
    with threads(1): assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_core_silences_only_the_named_library_warnings():
    "Importing the package silences a few known library warnings by their message, never a whole category."
    import subprocess, sys
    code = ("import warnings, ajtfb_collab.core\n"
            "warnings.warn('a warning of the user', UserWarning)\n"
            "warnings.warn('The given NumPy array is not writable, and PyTorch does not support non-writable tensors', UserWarning)\n"
            "warnings.warn('`torch.jit.script` is deprecated. Please switch to `torch.compile`', FutureWarning)\n"
            "warnings.warn('Your generator is empty.', UserWarning)\n")  # fastprogress, at each epoch of a fit with no validation set
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and 'a warning of the user' in res.stderr, res.stderr  # the user's own: shown
    assert not any(w in res.stderr for w in ('not writable', 'torch.jit.script', 'generator is empty')), res.stderr  # the named ones: silenced
