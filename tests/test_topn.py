"Top-N evaluation: the split, the four metrics, the batched top-k, popularity, a rating model, EASE."
import math
import numpy as np, pandas as pd, pytest, torch
from ajtfb_collab.core import BadValueError, TooLargeError
from ajtfb_collab.data import load_ratings
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.topn import (ease_bytes, stratified_split, precision_at_k, recall_at_k, ndcg_at_k, map_at_k, interactions, top_k,
                               evaluate_ranking, most_popular, ease_weights, ease, relevant_items, model_recommender)
from ajtfb_collab.fast import FAST
from conftest import needs_real_data


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=90, n_items=45, n_ratings=3000, seed=12)


def test_split_cuts_each_user_at_three_quarters(ratings):
    train, test = stratified_split(ratings, seed=3)
    n = ratings.groupby('user').size()
    assert (train.groupby('user').size() == n.map(lambda v: round(0.75 * v))).all()
    assert len(train) + len(test) == len(ratings) and not set(train.index) & set(test.index)
    again, _ = stratified_split(ratings, seed=3)
    assert again.index.equals(train.index) and not stratified_split(ratings, seed=4)[0].index.equals(train.index)
    with pytest.raises(BadValueError): stratified_split(ratings, ratio=1.5)


@needs_real_data
def test_split_has_recommenders_counts():
    train, test = stratified_split(load_ratings())
    assert (len(train), len(test)) == (74_992, 25_008)


def test_metrics_by_hand():
    recs = {'a': ['x', 'y', 'z', 'w'], 'b': ['p', 'q', 'r', 's'], 'c': []}
    rel = {'a': {'x', 'z', 'v'}, 'b': {'q'}, 'c': {'x'}}  # c gets nothing: it scores 0
    assert precision_at_k(recs, rel, 4) == pytest.approx((2 / 4 + 1 / 4) / 3)
    assert recall_at_k(recs, rel, 4) == pytest.approx((2 / 3 + 1) / 3)
    assert ndcg_at_k(recs, rel, 4) == pytest.approx(((1 + 1 / 2) / (1 + 1 / math.log2(3) + 1 / 2) + 1 / math.log2(3)) / 3)
    assert map_at_k(recs, rel, 4) == pytest.approx(((1 + 2 / 3) / 3 + 1 / 2) / 3)
    assert map_at_k({'a': ['x']}, {'a': {'x'}}, 10) == 1.0  # divided by min(n_relevant, k)
    with pytest.raises(BadValueError): ndcg_at_k(recs, rel, 0)


def test_oracle_and_top_k(ratings):
    train, test = stratified_split(ratings)
    rel = relevant_items(test)
    oracle = lambda tr, k: {u: sorted(rel.get(u, []))[:k] for u in tr.user.unique()}
    row = evaluate_ranking(oracle, train, test, k=5)
    assert row['ndcg5'] == pytest.approx(1.0) and row['map5'] == pytest.approx(1.0)
    X, users, items = interactions(train)
    pop = torch.from_numpy(np.asarray(X.sum(0)).ravel())
    recs = top_k(pop.expand(X.shape[0], -1), X, users, items, 5)
    seen = train.groupby('user').movie.apply(set)
    assert all(len(r) == 5 and not set(r) & seen[u] for u, r in recs.items())
    assert recs == most_popular(train, 5)


def test_ease_is_the_per_item_ridge_regression():
    X = (torch.rand(30, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    B = ease_weights(X, 3.)
    for j in range(6):
        o = [c for c in range(6) if c != j]
        A = X[:, o].double()
        b = torch.linalg.solve(A.T @ A + 3. * torch.eye(5, dtype=torch.float64), A.T @ X[:, j].double())
        assert torch.allclose(B[o, j], b.float(), atol=1e-5) and B[j, j] == 0


def test_split_is_recommenders_rows_group_by_group(ratings):
    train, _ = stratified_split(ratings, seed=3)
    slow = pd.concat([g.sample(frac=1, random_state=3).iloc[:round(0.75 * len(g))] for _, g in ratings.groupby('user')])
    assert train.index.tolist() == slow.index.tolist()


def test_batched_top_k_is_the_dense_one(ratings):
    train, _ = stratified_split(ratings)
    X, users, items = interactions(train)
    scores = torch.randn(X.shape, generator=torch.Generator().manual_seed(0))
    dense = top_k(scores, torch.from_numpy(X.toarray()), users, items, 7, batch=len(users))
    assert top_k(scores, X, users, items, 7, batch=3) == dense
    assert top_k(lambda rows: scores[rows], X, users, items, 7, batch=5) == dense


@needs_real_data
def test_batched_evaluation_matches_dense_on_ml100k():
    "most popular and EASE on MovieLens 100k: the batched, sparse path gives the dense path's metrics."
    train, test = stratified_split(load_ratings())
    X, users, items = interactions(train)
    Xd = torch.from_numpy(X.toarray())
    for batched, dense in ((most_popular, lambda: top_k(Xd.sum(0).expand_as(Xd), Xd, users, items, 10)),
                           (ease(500.), lambda: top_k(Xd @ ease_weights(Xd, 500.), Xd, users, items, 10))):
        assert evaluate_ranking(batched, train, test) | dict(seconds=0) == evaluate_ranking(lambda tr, k: dense(), train, test) | dict(seconds=0)


def test_ease_refuses_a_catalogue_that_would_not_fit():
    import scipy.sparse as sps
    with pytest.raises(TooLargeError, match='87,585 items .* 142.9 GB'):
        ease_weights(sps.csr_matrix((3, 87_585), dtype=np.float32), max_bytes=12 << 30)
    assert ease_bytes(1000) == 20_000_000


def test_top_k_gives_the_heap_back_after_every_batch(monkeypatch):
    "After training, glibc kept each batch's freed blocks (32M: 4.4 GB grew to 12.6 GB while scoring); `top_k` trims after every batch."
    import ajtfb_collab.topn as topn
    calls = []
    monkeypatch.setattr(topn, 'malloc_trim', lambda: (lambda pad: calls.append(pad)))
    scores = torch.arange(12.).reshape(4, 3)
    recs = topn.top_k(scores, np.zeros((4, 3)), np.arange(4), np.array([10, 20, 30]), k=2, batch=1)
    assert recs[0] == [30, 20] and calls == [0, 0, 0, 0]  # four batches of one user, four trims
    monkeypatch.setattr(topn, 'malloc_trim', lambda: None)  # no glibc (macOS, musl): the same lists
    assert topn.top_k(scores, np.zeros((4, 3)), np.arange(4), np.array([10, 20, 30]), k=2, batch=1) == recs


def test_a_rating_model_recommends_only_unseen_items(ratings):
    train, test = stratified_split(ratings)
    recs = model_recommender(FAST.but(epochs=2, n_factors=8))(train, 5)
    seen = train.groupby('user').movie.apply(set)
    assert set(recs) == set(train.user) and all(len(r) == 5 and not set(r) & seen[u] for u, r in recs.items())
