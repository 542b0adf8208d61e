"The compiled per-rating path: `SGDLearner` and the recipe `SGD`."
import math
import numpy as np, pytest
from fastai.torch_core import set_seed
from ajtfb_collab.core import BadValueError, random_split
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.fast import FastDotBias
from ajtfb_collab.sgd import SGDLearner, SGD
from ajtfb_collab.inference import predict_ratings


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=120, n_items=50, n_ratings=4000, n_factors=3, noise=0.3, seed=11)


def test_sgd_recipe_learns_and_gives_a_fast_dot_bias(ratings):
    "On a low-rank table with noise 0.3 (floor 0.09), SGD comes far below the mean's MSE; the model reads like `fast`'s."
    set_seed(0)
    learn = SGD.but(epochs=30, lam=0.02).train(ratings, progress=False)
    assert isinstance(learn, SGDLearner) and isinstance(learn.model, FastDotBias)
    mses = [v[1] for v in learn.recorder.values]
    assert len(mses) == 30 and len(learn.epoch_seconds) == 30
    valid = ratings.iloc[random_split(len(ratings), 0.2, 42)[1]]
    baseline = float(((valid.rating - ratings.rating.mean()) ** 2).mean())
    assert mses[-1] < 0.5 * baseline and mses[-1] < mses[0], (mses[-1], baseline)
    preds = predict_ratings(learn, valid)
    assert math.isclose(float(((preds - valid.rating.to_numpy()) ** 2).mean()), mses[-1], rel_tol=1e-4)  # same model, torch's forward


def test_sgd_learner_refuses_members(ratings):
    learn = SGD.learner(SGD.dls(ratings))
    learn.model = FastDotBias(3, 3, 2, n_members=2)
    with pytest.raises(BadValueError, match='one member'): learn.fit_one_cycle(1)


def test_sgd_on_two_threads_is_one_model_as_good_as_one_threads(ratings, monkeypatch):
    "Strata on two threads: the jobs run on two OS threads, a seed gives the same model twice, and it is within 0.005 of one thread's valid MSE."
    import threading
    from ajtfb_collab import kernels
    seen, real = set(), kernels.in_threads
    def spy(jobs):
        def mark(j): return lambda: (seen.add(threading.get_ident()), j())[1]
        return real([mark(j) for j in jobs])
    monkeypatch.setattr(kernels, 'in_threads', spy)
    fits = {}
    for t, run in ((1, 0), (2, 0), (2, 1)):
        set_seed(0)
        fits[t, run] = SGD.but(epochs=10, lam=0.02, threads=t).train(ratings, progress=False)
    assert len(seen) == 2  # two threads did the work
    for a, b in zip(fits[2, 0].model.parameters(), fits[2, 1].model.parameters()): assert (a == b).all()
    one, two = (fits[t, 0].recorder.values[-1][1] for t in (1, 2))
    assert abs(one - two) < 0.005, (one, two)
    assert any((a != b).any() for a, b in zip(fits[1, 0].model.parameters(), fits[2, 0].model.parameters()))  # another order: another model
