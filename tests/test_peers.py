"The peer libraries, wrapped once: each measured on a small table, and a missing one named by its pip package."
import importlib.util
import numpy as np
import pytest
from ajtfb_collab.core import BadValueError, MissingPackageError, rmse
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.topn import stratified_split, evaluate_ranking, most_popular
from ajtfb_collab.peers import peer_module, has_peer, surprise_fit_predict, myfm_fit_predict, implicit_model, libmf_fit_predict, PEER_PACKAGES


@pytest.fixture(scope='module')
def split():
    r = synthetic_ratings(n_users=120, n_items=50, n_ratings=4000, noise=0.3, seed=8)
    return r.iloc[:3200], r.iloc[3200:]


def test_a_missing_peer_names_its_pip_package(monkeypatch):
    with pytest.raises(BadValueError, match="unknown peer 'lightfm'"): peer_module('lightfm')
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    for name, pip in PEER_PACKAGES.items():
        with pytest.raises(MissingPackageError, match=f'pip install {pip}'): peer_module(name)


@pytest.mark.skipif(not has_peer('surprise'), reason='scikit-surprise is a dev extra: pip install -e ".[dev]"')
def test_surprise_predicts_the_test_table(split):
    train, test = split
    pred, seconds = surprise_fit_predict(train, test)
    assert pred.shape == (len(test),) and seconds > 0
    assert rmse(pred, test.rating) < 0.9 * test.rating.std()  # better than predicting the mean


@pytest.mark.skipif(not has_peer('myfm'), reason='myfm is a dev extra: pip install -e ".[dev]"')
def test_myfm_with_the_samplers_features_predicts(split):
    train, test = split
    per = []
    pred, seconds = myfm_fit_predict(train, test, side=('implicit',), n_iter=20, burn=5, sweep_seconds=per)
    assert pred.shape == (len(test),) and len(per) == 20 and sum(per) < seconds
    assert rmse(pred, test.rating) < 0.9 * test.rating.std()


@pytest.mark.skipif(not has_peer('implicit'), reason='implicit is a dev extra: pip install -e ".[dev]"')
def test_implicit_ranks_better_than_popularity_on_chosen_items():
    from test_rank import chosen
    train, test = stratified_split(chosen())
    als = evaluate_ranking(implicit_model('als', iterations=15, factors=16), train, test, k=5)
    assert als['ndcg5'] > evaluate_ranking(most_popular, train, test, k=5)['ndcg5']
    with pytest.raises(BadValueError, match="'als' or 'bpr'"): implicit_model('knn')


@pytest.mark.skipif(not has_peer('libmf'), reason='libmf is a dev extra: pip install -e ".[dev]"')
def test_libmf_predicts_and_times_its_epochs(split):
    train, test = split
    pred, per, setup = libmf_fit_predict(train, test.assign(user=test.user.where(test.index % 50 > 0, -1)), factors=8,
                                         iterations=30)
    assert pred.shape == (len(test),) and len(per) == 30 and per[0] >= 0 and setup >= 0
    assert rmse(pred, test.rating) < 0.9 * test.rating.std()  # better than predicting the mean
    assert np.allclose(pred[test.index % 50 == 0], train.rating.mean())  # an unknown user gets the mean
