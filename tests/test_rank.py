"Ranking: the split, the four metrics, EASE, and the model trained to rank (a model kind like the others)."
import math
import numpy as np, pandas as pd, pytest, torch
from ajtfb_collab.core import BadValueError
from ajtfb_collab.data import synthetic_ratings, load_ratings
from ajtfb_collab.models import model_kind
from ajtfb_collab.rank import (SoftmaxLoss, TooLargeError, ease_bytes, stratified_split, precision_at_k, recall_at_k, ndcg_at_k, map_at_k, interactions, top_k,
                               evaluate_ranking, most_popular, ease_weights, ease, SoftmaxDot, RANK, model_recommender,
                               relevant_items)
from ajtfb_collab.inference import save_model, load_model, recommend, predict_ratings
from ajtfb_collab.interpret import most_similar
from ajtfb_collab.coldstart import recommend_new_user
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


@pytest.fixture(scope='module')
def ranker(ratings):
    return RANK.but(epochs=6, n_factors=16).train(ratings, item_name='movie', progress=False)


def test_ranker_is_a_model_kind(ranker, ratings, tmp_path):
    kind = model_kind(ranker.model)
    assert kind.ranks and kind.user_bias() is None and isinstance(ranker.model, SoftmaxDot)
    x = ranker.dls.valid.one_batch()[0][:10]
    logits = ranker.model.eval()(x).detach()
    np.testing.assert_allclose(kind.predict(x[:, 0], x[:, 1]), logits[torch.arange(10), x[:, 1]].numpy(), atol=1e-5)
    loaded = load_model(save_model(ranker, tmp_path/'rank.pth'))
    assert type(loaded.model) is SoftmaxDot
    pd.testing.assert_frame_equal(recommend(loaded, 3, n=5), recommend(ranker, 3, n=5))
    pd.testing.assert_frame_equal(most_similar(loaded, 7, n=3), most_similar(ranker, 7, n=3))


def chosen(n_users=120, n_items=60, per_user=20, seed=0):
    "Ratings whose *choices* follow a low-rank model: each user picks items with probability softmax(3 u.v)."
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    rows = []
    for a in range(n_users):
        p = np.exp(3 * u[a] @ v.T / np.sqrt(3)); p /= p.sum()
        rows += [(a + 1, int(m) + 1, 4) for m in rng.choice(n_items, per_user, replace=False, p=p)]
    return pd.DataFrame(rows, columns=['user', 'movie', 'rating'])


def test_ranker_learns_choices_and_folds_in(ranker, ratings):
    train, test = stratified_split(chosen())
    learned = evaluate_ranking(model_recommender(RANK.but(epochs=10, n_factors=8)), train, test, k=5)
    popular = evaluate_ranking(most_popular, train, test, k=5)
    assert learned['ndcg5'] > popular['ndcg5'] + 0.1  # it learns who chooses what
    answers = ratings[ratings.user == 4][['movie', 'rating']].head(8)
    recs = recommend_new_user(ranker, answers, n=5)
    assert len(recs) == 5 and not recs.movie.isin(answers.movie).any()
    cold = recommend_new_user(ranker, n=5)  # nothing answered: the mean user
    assert not recs.movie.tolist() == cold.movie.tolist()  # the answers change the list


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


def test_sampled_softmax_estimates_the_full_denominator():
    "The log-Q corrected negatives' sum of exp(logit) is an unbiased estimate of the full softmax's, the chosen item left out."
    torch.manual_seed(0)
    m = SoftmaxDot(5, 200, 4, n_neg=150, item_counts=np.arange(200) ** 2)
    for p in m.parameters(): p.data.normal_(0, 0.5)
    x = torch.tensor([[1, 3], [2, 199], [4, 50]])
    m.n_neg = 0; full = m(x).detach(); m.n_neg = 150
    others = full.exp().sum(1) - full[torch.arange(3), x[:, 1]].exp()
    est = torch.stack([m(x).detach()[:, 1:].exp().sum(1) for _ in range(1000)]).mean(0)
    assert torch.allclose(est, others, rtol=0.05)
    assert SoftmaxLoss(m)(m(x), x[:, 1]).isfinite()


def test_sampled_and_full_softmax_rank_alike():
    "The same recipe with a sampled softmax of half the catalogue ranks about as well as with the full one."
    from ajtfb_collab.data import ladder_ratings
    df = ladder_ratings((12_000, 300, 120), seed=4)  # choices follow popularity: both should learn at least that
    train, test = stratified_split(df)
    full = evaluate_ranking(model_recommender(RANK.but(epochs=4, n_factors=16)), train, test)['ndcg10']
    sampled = evaluate_ranking(model_recommender(RANK.but(epochs=4, n_factors=16, n_neg=60)), train, test)['ndcg10']
    pop = evaluate_ranking(most_popular, train, test)['ndcg10']
    assert abs(full - sampled) < 0.05 and min(full, sampled) > 0.8 * pop


def test_softmax_kind_predicts_a_batch_of_pairs_at_a_time():
    "A ranking model's scores for many pairs come `bs` pairs at a time (the factor rows of 32M users x items pairs do not fit), the same scores."
    torch.manual_seed(0)
    kind = model_kind(SoftmaxDot(7, 11, 4))
    users, items = np.repeat(np.arange(7), 11), np.tile(np.arange(11), 7)
    seen, score = [], kind.score
    kind.score = lambda vecs, bias, i: seen.append(len(vecs)) or score(vecs, bias, i)
    np.testing.assert_allclose(kind.predict(users, items, bs=10), kind.predict(users, items), rtol=1e-6)
    assert max(seen[:-1]) == 10 and sum(seen[:-1]) == 77 and seen[-1] == 77  # 8 chunks of at most 10, then one of all 77
    assert kind.predict(np.zeros(0, int), np.zeros(0, int)).shape == (0,)


def test_softmax_kind_scores_every_item_by_one_matrix_product():
    "`score_items` (what top-N lists use: 200k users x 87k movies at 32M) gives each pair's logit, without a user bias."
    torch.manual_seed(0)
    m = SoftmaxDot(7, 11, 4)
    for p in m.parameters(): p.data.normal_(0, 0.5)
    kind, us, its = model_kind(m), np.array([3, 1, 6]), np.arange(11)
    want = m.u_weight.weight[us] @ m.i_weight.weight.T + m.i_bias.weight[:, 0]  # (3, 11)
    np.testing.assert_allclose(kind.score_items(us, its).numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kind.score_items(us, its).numpy().ravel(), kind.predict(np.repeat(us, 11), np.tile(its, 3)), atol=1e-5)
    assert not m.u_bias.weight.requires_grad  # not part of the model: nothing trains it (nor does DDP wait for its gradient)


def test_top_k_gives_the_heap_back_after_every_batch(monkeypatch):
    "After training, glibc kept each batch's freed blocks (32M: 4.4 GB grew to 12.6 GB while scoring); `top_k` trims after every batch."
    import ajtfb_collab.rank as rank
    calls = []
    monkeypatch.setattr(rank, '_malloc_trim', lambda: (lambda pad: calls.append(pad)))
    scores = torch.arange(12.).reshape(4, 3)
    recs = rank.top_k(scores, np.zeros((4, 3)), np.arange(4), np.array([10, 20, 30]), k=2, batch=1)
    assert recs[0] == [30, 20] and calls == [0, 0, 0, 0]  # four batches of one user, four trims
    monkeypatch.setattr(rank, '_malloc_trim', lambda: None)  # no glibc (macOS, musl): the same lists
    assert rank.top_k(scores, np.zeros((4, 3)), np.arange(4), np.array([10, 20, 30]), k=2, batch=1) == recs
