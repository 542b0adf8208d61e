"The canonical folds: recipes fitted on each `uN.base`, scored on `uN.test`, clipped to the training fold's scale."
import numpy as np, pandas as pd, pytest
from ajtfb_collab.core import rmse
from ajtfb_collab.data import load_split
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.kinds import model_kind
from ajtfb_collab.core import squash
from ajtfb_collab.inference import predict_ratings
from ajtfb_collab.evaluate import check_folds, summary_line, evaluate_folds, fit_predict, fit_on_all, scale, evaluate_release, release_split


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=120, n_items=50, n_ratings=4000, n_factors=3, noise=0.3, seed=11)


def test_folds_checked_and_summed_up():
    with pytest.raises(ValueError, match="'u6'"): check_folds('u1,u6')
    assert check_folds(['u2']) == ['u2'] and check_folds(' u1, u2 ') == ['u1', 'u2']
    t = pd.DataFrame(dict(rmse=[0.9, 0.8]), index=['u2', 'mean'])
    assert summary_line(t) == 'mean_rmse=0.8000 u1_rmse=nan'
    assert scale(pd.DataFrame({'rating': [0.5, 4.5, 3]})) == (0.5, 4.5)


def test_evaluate_folds_on_tiny_folder(tiny_ml100k):
    kw = dict(n_members=2, n_factors=2, epochs=2)
    t = evaluate_folds('u1,u2', path=tiny_ml100k, progress=False, **kw)
    assert list(t.index) == ['u1', 'u2', 'mean'] and (t.n_test == 3).all()
    for fold in ('u1', 'u2'):  # each fold's RMSE is that of its own fit, clipped to its training fold's scale
        train, test = load_split(fold, tiny_ml100k)
        assert t.loc[fold, 'rmse'] == pytest.approx(rmse(np.clip(fit_predict(train, test, **kw), *scale(train)), test.rating), abs=1e-6)
    assert t.loc['mean', 'rmse'] == pytest.approx(t.rmse[['u1', 'u2']].mean())


def test_fit_predict_scores_unknown_titles(ratings):
    train, test = ratings.iloc[:3000], ratings.iloc[3000:].copy()
    test.iloc[0, test.columns.get_loc('title')] = 'Never Rated'
    kw = dict(n_members=2, n_factors=4, epochs=2)
    pred, learn = fit_predict(train, test, **kw), fit_on_all(train, **kw)  # the same seed: the same model
    kind, u = model_kind(learn.model), learn.dls.classes['user'].index(test.user.iloc[0])
    # the unknown title: the user's bias with the mean item bias and no factors, per member, averaged
    want = squash(kind.user_bias()[u] + kind.item_bias()[1:].mean(0), kind.y_range).mean().item()
    assert pred[0] == pytest.approx(want, abs=1e-5)
    assert np.allclose(pred[1:], predict_ratings(learn, test.iloc[1:]), atol=1e-6)  # the rest: the model's own


def test_release_protocol_a_seeded_tenth_and_the_papers_beside_ours(ratings):
    df = ratings
    train, test = release_split(df)
    assert len(test) == round(0.1 * len(df)) and len(train) + len(test) == len(df)
    pd.testing.assert_frame_equal(release_split(df)[1], test)  # seeded
    assert not release_split(df, seed=1)[1].equals(test)  # another seed, another tenth
    mean = lambda trn, tst: np.full(len(tst), trn.rating.mean())
    table, line = evaluate_release('ml-10m', mean, 'mean', ratings=df)
    assert table.index.tolist() == ['Bayesian timeSVD++ flipped', 'Bayesian MF (Gibbs sampling)', 'SGD MF', 'ours (mean)']
    ours = table.loc['ours (mean)', 'rmse']
    np.testing.assert_allclose(ours, rmse(np.full(len(test), train.rating.mean()), test.rating), rtol=1e-6)
    assert line == f"dataset=ml-10m recipe=mean rmse={ours:.4f} published_best=0.7485 seconds={line.split('seconds=')[1]}"
