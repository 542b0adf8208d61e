"The dot product trained to rank: a model kind like the others, its sampled softmax, its kernels."
import numpy as np, pandas as pd, pytest, torch
from ajtfb_collab.synthetic import synthetic_ratings, ladder_ratings
from ajtfb_collab.kinds import model_kind
from ajtfb_collab.topn import stratified_split, evaluate_ranking, most_popular, model_recommender
from ajtfb_collab.rank import SoftmaxLoss, SoftmaxDot, RANK, softmax_ce, rank_bs, ranking_table, rank_line
from ajtfb_collab.inference import save_model, load_model, recommend
from ajtfb_collab.interpret import most_similar
from ajtfb_collab.coldstart import recommend_new_user


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=90, n_items=45, n_ratings=3000, seed=12)


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


def test_softmax_ce_is_cross_entropy_values_and_gradients():
    torch.manual_seed(0)
    logits, targ = torch.randn(37, 11, requires_grad=True), torch.randint(0, 11, (37,))
    ref = torch.nn.functional.cross_entropy(logits, targ)
    g_ref, = torch.autograd.grad(ref, logits)
    ours = softmax_ce(logits, targ)
    g_ours, = torch.autograd.grad(ours, logits)
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(g_ours, g_ref, atol=1e-6)


def test_rank_bs_grows_with_the_table():
    assert rank_bs(75_000) == 1024 and rank_bs(25_600_000) == 32_768


def test_ranking_table_puts_ours_first_and_sums_up(ratings):
    train, test = stratified_split(ratings)
    small = RANK.but(epochs=2, n_factors=8)
    import ajtfb_collab.rank as rank
    table = ranking_table(train, test, k=5, lams=(100,), rating_models=(), peers={'random': lambda tr, k: {u: list(tr.movie.unique()[:k]) for u in tr.user.unique()}},
                          ours=small)
    assert table.index[0] == rank.OURS and {'most popular', 'random'} <= set(table.index)
    assert rank_line(table, 5).split()[0].startswith('ndcg5=')


def test_training_steps_reuse_their_blocks_and_gradients():
    "A sampled softmax's training steps write their logits into one kept block and their gradients into the same dense tables."
    import pickle
    from ajtfb_collab.rank import rank_opt
    torch.manual_seed(0)
    m = SoftmaxDot(50, 40, 8, n_neg=30); x = torch.stack([torch.randint(0, 50, (64,)), torch.randint(0, 40, (64,))], 1)
    opt, blocks, grads = rank_opt(list(m.parameters()), lr=1e-3), set(), set()
    for _ in range(3):
        out = m(x); SoftmaxLoss(m)(out, x[:, 1]).backward(); opt.step(); opt.zero_grad()
        blocks.add(out.data_ptr()); grads.add(tuple(p.grad.data_ptr() for p in m.parameters() if p.grad is not None))
    assert len(blocks) == 1 and len(grads) == 1
    assert all(not p.grad.is_sparse for p in m.parameters() if p.grad is not None)
    a = m(x); a0 = a.detach().clone(); b = m(x)
    assert a.data_ptr() != b.data_ptr() and torch.equal(a, a0)  # a second forward before the first one's backward: a block of its own
    with torch.no_grad(): assert m(x).data_ptr() != out.data_ptr()  # a forward that never runs backward: a new tensor
    assert dict(pickle.loads(pickle.dumps(m))._scratch) == {}  # a saved model holds no blocks
