"Benchmarks: a fit timed beside another, the Pareto front, the summary lines, scaling and the ladder in fresh processes."
import math
import pandas as pd, pytest
from ajtfb_collab.core import BadValueError
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.fast import FAST
from ajtfb_collab.bench import pareto, bench_fit, scale_bench, peer_line, bench_line, ladder_line, ladder_bench


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=120, n_items=50, n_ratings=4000, n_factors=3, noise=0.3, seed=11)


def test_bench_fit_needs_a_recipe(ratings):
    with pytest.raises(BadValueError, match="needs a TrainRecipe"): bench_fit('fastest', ratings)
    row = bench_fit(FAST.but(epochs=5, n_factors=4, dls_kwargs=dict(bs=128)), ratings, seed=0)
    assert row['recipe'] == 'fast' and row['valid_mse'] < ratings.rating.var()


def test_pareto():
    t = pd.DataFrame(dict(seconds=[1, 2, 3, 1], valid_mse=[0.9, 0.8, 0.85, 0.95]))
    assert pareto(t).tolist() == [True, True, False, False]


def test_scale_bench_small():
    t = scale_bench((200_000,), progress=False)
    row = t.loc[200_000]
    # the sizes it promises: 50 ratings a user, 250 an item, 80% of them trained on in batches of 1,024
    assert (row['users'], row['items'], row['steps']) == (4000, 800, math.ceil(160_000 / 1024)) and not row['sparse']
    assert row.ms_per_step == pytest.approx(1000 * row.epoch_s / row.steps)
    assert row.valid_mse < 0.9 * row.rating_var  # one epoch learns much of the low-rank truth
    assert row.peak_rss_mb > 100  # the fresh process's own peak: torch alone takes more than this


def test_peer_line():
    med = pd.DataFrame(dict(valid_mse=[0.747, 0.756], seconds=[7.0, 11.0]), index=['bayes (ours)', 'myFM, same side information'])
    assert peer_line(med) == 'ours_mse=0.7470 peer_mse=0.7560 ours_s=7.00 peer_s=11.00 time_ratio=0.64'


def test_bench_line_is_medians_side_by_side():
    med = pd.DataFrame(dict(valid_mse=[0.85, 0.80], seconds=[40.0, 2.0], setup_s=[0.1, 0.05]), index=['stock', 'fast'])
    assert bench_line(med) == 'speedup=20.0 ours_mse=0.8000 stock_mse=0.8500 ours_s=2.00 stock_s=40.00'
    assert ladder_line(dict(size='1m', recipe='fast', unit='epoch', seconds=2.0, other=1)) == 'size=1m recipe=fast unit=epoch seconds=2'
    with pytest.raises(BadValueError, match="unknown ladder size or recipe '2m'"): ladder_bench(('2m',))


def test_ladder_ratios_read_the_table():
    "Our sweep over myFM's where both ran, each recipe's cost per rating largest over smallest size, the largest size's peak memory."
    import pandas as pd
    from ajtfb_collab.bench import ladder_ratios
    rows = [dict(size=s, recipe=r, seconds=sec, ns_per_rating=ns, peak_rss_mb=mb) for s, r, sec, ns, mb in
            [('1m', 'fast', 2., 100., 900), ('1m', 'bayes', 1., 50., 1000), ('1m', 'myfm', 4., 80., 1100),
             ('32m', 'fast', 60., 110., 4000), ('32m', 'bayes', 40., 65., 8000), ('32m', 'myfm', float('nan'), float('nan'), float('nan'))]]
    lines = ladder_ratios(pd.DataFrame(rows))
    assert lines == ['size=1m bayes_over_myfm_sweep=0.25', 'cost_per_rating=32m/1m fast=1.1 bayes=1.3', 'size=32m peak_rss_gb=7.81']


def test_ladder_repeats_run_in_turns_and_keep_each_points_median(monkeypatch, tmp_path):
    "Every point once, then again (not one point three times running); each point's median run kept, with its spread."
    import ajtfb_collab.bench as bench
    seconds, calls = iter([3., 1., 5., 2., 4., 9., 7.]), []
    def point(code, module, env):  # what `ladder_point` returns, from a list instead of a fit
        calls.append(int(env['OMP_NUM_THREADS']))
        return dict(size='1m', recipe='sgd', unit='epoch', threads=calls[-1], seconds=next(seconds))
    monkeypatch.setattr(bench, 'in_process', point)
    monkeypatch.setattr(bench, 'ladder_data', lambda size, folder: tmp_path/f'ladder-{size}.npz')
    t = ladder_bench(('1m',), ['sgd'], n_threads=(1, 2), repeats=3, progress=False)
    assert calls == [1, 2, 1, 2, 1, 2]
    assert list(t.threads) == [1, 2] and list(t.seconds) == [4., 2.] and list(t.runs) == [3, 3]
    assert list(t.spread) == pytest.approx([5 / 3, 9.]) and 'run' not in t
    one = ladder_bench(('1m',), ['sgd'], n_threads=1, progress=False)  # one run: the row as measured, no `runs` column
    assert list(one.columns) == ['size', 'recipe', 'unit', 'threads', 'seconds'] and len(one) == 1
    with pytest.raises(BadValueError, match='repeats must be at least 1'): ladder_bench(('1m',), ['sgd'], repeats=0)
