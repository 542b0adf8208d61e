"The Gibbs sampler: it recovers known factors better than the mode, and its model is one more kind of the library."
import numpy as np, pandas as pd, pytest, torch
import scipy.sparse as sps
from helpers import low_rank_data, table_rmse
from ajtfb_collab.bayes import BAYES, PARTS, BayesDot, Side, ToScore, gibbs, wishart, _side_weights
from ajtfb_collab.inference import load_model, predict_ratings, recommend, save_model
from ajtfb_collab.kinds import model_kind


@pytest.fixture(scope='module')
def low_rank():
    u, i, r, truth = low_rank_data(n_users=200, n_items=120, n_ratings=4000, noise=0.5, seed=1)
    fit = lambda **kw: gibbs(u, i, r, 201, 121, n_factors=8, n_iter=150, burn=40, hetero=None, progress=False,
                             device='cpu', **kw)
    return fit, truth


def test_posterior_mean_recovers_the_table_better_than_any_mode(low_rank):
    fit, truth = low_rank
    post = fit()
    best_mode = min(table_rmse(fit(sample=False, lam=lam), truth) for lam in (0.3, 1., 3., 10., 30.))
    assert table_rmse(post, truth) < best_mode - 0.01
    assert table_rmse(post, truth) < 0.5  # below the noise it was given: it found the table, not the ratings


def test_noise_precision_is_found(low_rank):
    fit, _ = low_rank
    alpha = fit().trace.alpha.iloc[40:].mean()
    assert 3 < alpha < 5  # noise 0.5: precision 4


def test_the_model_holds_the_kept_samples_as_members(low_rank):
    fit, _ = low_rank
    post = fit(keep=7)
    model = BayesDot.from_posterior(post)
    assert model.n_members == 7 and model.n_factors == 8
    x = torch.tensor([[1, 1], [5, 9]])
    by_hand = (post.items[:, x[:, 1], 0] + post.users[:, x[:, 0], 0]
               + (post.users[:, x[:, 0], 1:] * post.items[:, x[:, 1], 1:]).sum(-1)).mean(0)  # (2,)
    with torch.no_grad(): assert torch.allclose(model(x), by_hand, atol=1e-5)


def test_wishart_mean():
    torch.manual_seed(0)
    scale = torch.tensor([[2., .5], [.5, 1.]], dtype=torch.float64)
    m = torch.stack([wishart(scale, 4.) for _ in range(3000)]).mean(0)
    assert torch.allclose(m, 4 * scale, atol=0.3)


def _dense_weights_draws(F, Y, Lam, lam_b, n):
    "Exact draws of `B | th` by the dense reference: `A = F^T F + lam_b I` inverted (small `p` only)."
    A = F.T @ F + lam_b * torch.eye(F.shape[1], dtype=torch.float64)
    mean = torch.linalg.solve(A, F.T @ Y)
    La, Ll = torch.linalg.cholesky(torch.linalg.inv(A)), torch.linalg.cholesky(torch.linalg.inv(Lam))
    return mean, torch.stack([mean + La @ torch.randn(*mean.shape, dtype=torch.float64) @ Ll.T for _ in range(n)])


@pytest.mark.parametrize('dense_max', [0, 10**6])  # conjugate gradients on sparse F; the eigenbasis of a small F
def test_side_weights_draw_the_exact_conditional(dense_max):
    "Both ways of drawing B against its dense posterior: same mean and spread."
    torch.manual_seed(0)
    n, p, K = 60, 25, 3
    F = (torch.rand(n, p) < 0.2).float() * torch.rand(n, p)
    me = Side(n, K, F, 'cpu', lam=1., dense_max=dense_max)
    assert (me.FQ is None) == (dense_max == 0)
    me.th, me.m = torch.randn(n, K), torch.randn(K) * 0.1
    me.Lam = torch.tensor([[2., .3, 0.], [.3, 1., .2], [0., .2, 1.5]])
    me.lam_b = 0.7
    mean, dense = _dense_weights_draws(F.double(), (me.th - me.m).double(), me.Lam.double(), me.lam_b, 2000)
    _side_weights(me, sample=False, tol=1e-6)
    to_B = (lambda B: B) if me.FQ is None else (lambda Bq: torch.linalg.lstsq(F.double(), me.FQ.double() @ Bq.double()).solution)
    assert torch.allclose(to_B(me.B).double(), mean, atol=1e-4)  # the mode: the exact solution
    draws = []
    for _ in range(2000):
        _side_weights(me, sample=True)  # at the sampler's own tolerance, lam_b held (`_hyper` draws it after)
        draws.append(to_B(me.B.clone()))
    draws = torch.stack(draws).double()
    assert torch.allclose(draws.mean(0), mean, atol=0.08)
    assert torch.allclose(draws.std(0), dense.std(0), rtol=0.1)
    assert me.F.layout == torch.sparse_csr and not any(t.shape == (p, p) for t in vars(me).values() if torch.is_tensor(t))


@pytest.fixture(scope='module')
def learned():
    u, i, r, _ = low_rank_data(n_users=120, n_items=80, n_ratings=3000, seed=2)
    df = pd.DataFrame(dict(user=u, title=[f'Film {j}' for j in i], rating=r))
    return df, BAYES.but(epochs=60, burn=20, keep=10, side=('implicit',)).train(df, progress=False)


def test_save_load_round_trip(learned, tmp_path):
    df, learn = learned
    loaded = load_model(save_model(learn, tmp_path/'bayes.pth'))
    assert type(loaded.model) is BayesDot and loaded.model.n_members == 10
    assert np.allclose(predict_ratings(loaded, df.head(200)), predict_ratings(learn, df.head(200)), atol=1e-5)
    assert recommend(loaded, 1, n=5).title.tolist() == recommend(learn, 1, n=5).title.tolist()
    assert model_kind(loaded.model).summary()['y_range'] is None


def test_valid_mse_beats_the_mean(learned):
    df, learn = learned
    assert learn.recorder.values[-1][1] < 0.6 * df.rating.var()


def test_exact_fold_in_recovers_known_users():
    "Users' own training ratings, folded in as new users, give back about those users' predictions."
    from ajtfb_collab.coldstart import fold_in_answers
    u, i, r, _ = low_rank_data(n_users=120, n_items=80, n_ratings=3000, seed=2)
    df = pd.DataFrame(dict(user=u, title=[f'Film {j}' for j in i], rating=r))
    learn = BAYES.but(epochs=60, burn=20, keep=10, side=()).train(df, progress=False)  # no side information:
    kind = model_kind(learn.model)                           # a new user's prior is then the known users' prior
    items = torch.arange(1, len(learn.dls.classes['title']))
    mean_user = kind.score(kind.user_factors()[1:].mean(0).expand(len(items), -1),
                           kind.user_bias()[1:].mean(0).expand(len(items), -1), items)  # before any answer
    gaps, corrs, before = [], [], []
    for user in sorted(df.user.unique())[::6]:  # twenty users
        _, vecs, bias = fold_in_answers(learn, df[df.user == user].assign(user='again'))
        new = kind.score(vecs.expand(len(items), -1), bias.expand(len(items), -1), items)
        own = torch.as_tensor(kind.predict(np.full(len(items), list(learn.dls.classes['user']).index(user)), items.numpy()))
        gaps.append(float((new - own).abs().mean())); before.append(float((mean_user - own).abs().mean()))
        corrs.append(np.corrcoef(new.numpy(), own.numpy())[0, 1])
    # each draw is noisy (10 kept samples), so the test is over twenty users: close to their own, far from the mean user
    assert np.median(corrs) > 0.95 and min(corrs) > 0.8
    assert np.mean(gaps) < 0.15 and np.mean(gaps) < 0.5 * np.mean(before)


def test_rows_to_score_are_averaged_from_burn_and_traced():
    u, i, r, _ = low_rank_data(n_users=60, n_items=40, n_ratings=1200, seed=4)
    rows = ToScore(u[:100], i[:100], ratings=r[:100])
    from ajtfb_collab.core import threads
    with threads(2):  # two threads whatever OMP_NUM_THREADS says: the pairs may be drawn side by side
        post = gibbs(u, i, r, 61, 41, n_factors=3, n_iter=20, burn=5, keep=3, score=rows, progress=False, device='cpu')
    assert post.pred.shape == (100,) and list(post.trace.columns) == ['alpha', 'train_mse', 'score_mse', 'score_mse_avg', 'seconds', *PARTS]
    parts = post.trace[list(PARTS)]
    pairs = (parts[['users_vectors_s', 'items_prior_s']].max(axis=1) + parts[['items_vectors_s', 'users_prior_s']].max(axis=1)
             + parts.mean_noise_s + parts.scoring_s)  # on two threads a pair may be drawn side by side (`sweep`)
    assert (parts >= 0).all().all() and (pairs <= post.trace.seconds * 1.001).all()  # the parts of a sweep, timed within it
    with threads(1):
        post1 = gibbs(u, i, r, 61, 41, n_factors=3, n_iter=20, burn=5, keep=3, score=rows, progress=False, device='cpu')
    parts1 = post1.trace[list(PARTS)]
    assert (parts1.sum(axis=1) <= post1.trace.seconds * 1.001).all()  # on one thread, one after the other
    assert np.allclose(post1.pred, post.pred, atol=1e-3)  # and the same chain: each prior from its side's own stream
    mse = post.trace.score_mse_avg.iloc[-1]
    assert mse == pytest.approx(float(np.mean((post.pred - r[:100]) ** 2)), rel=1e-5)  # the last average is the prediction
    assert mse < post.trace.score_mse.iloc[5:].mean()  # averaging the draws beats a single draw
    with pytest.raises(ValueError, match='must be larger than burn'): gibbs(u, i, r, 61, 41, n_iter=5, burn=5)


# --- the compiled passes over the ratings (CPU) ---
from ajtfb_collab import bayes as B, kernels as K


def _random_ratings(n_users=30, n_items=20, n=400, K=5, seed=0):
    rng = np.random.default_rng(seed)
    u, i = np.sort(rng.integers(0, n_users, n)).astype(np.int32), rng.integers(0, n_items, n).astype(np.int32)
    U, V = (rng.standard_normal((m, K)).astype(np.float32) for m in (n_users, n_items))
    wu, wi = (rng.gamma(5, 0.2, m).astype(np.float32) for m in (n_users, n_items))
    return rng, u, i, rng.integers(1, 6, n).astype(np.float32), U, V, wu, wi


def test_explain_and_noise_passes_match_the_tensor_code():
    rng, u, i, y, U, V, wu, wi = _random_ratings()
    at = torch.sparse_csr_tensor(torch.tensor(np.r_[0, np.cumsum(np.bincount(u, minlength=30))]), torch.tensor(i), torch.ones(len(u)), (30, 20))
    users, items = Side(30, 5, None, 'cpu', 1.), Side(20, 5, None, 'cpu', 1.)
    users.th, items.th = torch.tensor(U), torch.tensor(V)
    want = B._explained(users, items, at).numpy()  # the sampled matrix product, ratings sorted by user
    out = np.empty(len(u), np.float32)
    sw, swl = K.explain_ratings(u, i, y, U, V, wu, wi, out)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    w = wu[u] * wi[i]
    assert np.isclose(sw, w.sum(), rtol=1e-5) and np.isclose(swl, (w * (y - want)).sum(), rtol=1e-4)
    sq = np.empty(len(u), np.float32)
    assert np.isclose(K.squared_errors(y, np.float32(3.), out, sq), ((y - 3 - out) ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(sq, (y - 3 - out) ** 2, rtol=1e-5)
    by_user = np.empty(30, np.float32); K.sums_by_row(u, i, wi, sq, by_user)
    np.testing.assert_allclose(by_user, np.bincount(u, wi[i] * sq, minlength=30), rtol=1e-5)
    assert np.isclose(K.weighted_total(u, i, wu, wi, sq), (wu[u] * wi[i] * sq).sum(), rtol=1e-5)


@pytest.mark.parametrize('sample', [True, False])
def test_side_sums_match_the_sparse_products(sample):
    "Each row's sums over its ratings, computed as it goes, are the sparse products' over the table of z z^T."
    rng, u, i, y, _, V, _, wi = _random_ratings()
    crow = np.r_[0, np.cumsum(np.bincount(u, minlength=30))].astype(np.int32)
    eps = rng.standard_normal(len(u)).astype(np.float32) if sample else np.zeros(0, np.float32)
    z = np.concatenate([np.ones((20, 1), np.float32), V[:, 1:]], 1)
    S, t, noise = np.zeros((30, 5, 5), np.float32), np.zeros((30, 5), np.float32), np.zeros((30, 5), np.float32)
    K.side_sums(crow, i, y, eps, z, wi, V[:, 0].copy(), np.float32(3.5), 0, 30, S, t, noise)
    for row in range(30):
        js = slice(crow[row], crow[row + 1])
        zr, wr = z[i[js]], wi[i[js]]
        np.testing.assert_allclose(S[row], (wr[:, None, None] * zr[:, :, None] * zr[:, None, :]).sum(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(t[row], ((wr * (y[js] - 3.5 - V[i[js], 0]))[:, None] * zr).sum(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(noise[row], ((eps[js] * np.sqrt(wr))[:, None] * zr).sum(0) if sample else 0, rtol=1e-4, atol=1e-4)


def test_the_compiled_sampler_draws_what_the_tensor_code_draws(monkeypatch):
    "Same seed, same random numbers: the compiled vectors (every table 'out of cache') follow the sparse products' draws."
    u, i, r, _ = low_rank_data(n_users=80, n_items=50, n_ratings=1500, noise=0.5, seed=3)
    fit = lambda: gibbs(u, i, r, 81, 51, n_factors=4, n_iter=4, burn=1, keep=1, score=ToScore(u[:200], i[:200]), progress=False, device='cpu')
    monkeypatch.setattr(B, 'ZZ_IN_CACHE', 1 << 40); products = fit()
    monkeypatch.setattr(B, 'ZZ_IN_CACHE', 0); compiled = fit()
    np.testing.assert_allclose(compiled.pred, products.pred, atol=1e-3)
    np.testing.assert_allclose(compiled.trace.alpha, products.trace.alpha, rtol=1e-3)


def test_column_blocks_give_the_same_products_and_weights(monkeypatch):
    "F's products from column blocks are F's products; the side-information weights solved through them are the same."
    from ajtfb_collab import kernels
    F = sps.random(50, 37, density=0.15, format='csr', dtype=np.float32, random_state=1)
    X = torch.randn(37, 4)
    blocks = kernels.col_blocks(F, 4, 'cpu', block_bytes=4 * 4 * 5)  # 5 columns a block
    assert [b - a for a, b, _ in blocks] == [5] * 7 + [2]
    assert torch.allclose(kernels.blocked_mm(blocks, X), torch.from_numpy(F.toarray()) @ X, atol=1e-5)
    Bs = []
    for block_bytes, n_blocks in ((kernels.SIDE_BLOCK_BYTES, (1, 1)), (4 * 4 * 5, (8, 10))):  # F's 37 columns, F^T's 50: in blocks of 5
        monkeypatch.setattr(kernels, 'SIDE_BLOCK_BYTES', block_bytes)
        torch.manual_seed(0)
        me = Side(50, 4, F, 'cpu', lam=1., dense_max=0)
        assert (len(me.F_cols), len(me.Ft_cols)) == n_blocks
        me.th, me.lam_b = torch.randn(50, 4), 0.5
        _side_weights(me, sample=False, tol=1e-6)
        Bs.append(me.B)
    assert torch.allclose(*Bs, atol=1e-4)


@pytest.mark.parametrize('n_threads', [1, 2])
def test_vector_draws_have_the_exact_posterior_moments(n_threads):
    "Given the other side, 4,000 draws of each row's vector have the mean P^-1 b and covariance P^-1 of its conditional, on one thread or two."
    from ajtfb_collab.core import threads
    rng = np.random.default_rng(0)
    n_u, n_i, Kf = 6, 9, 3
    u = np.repeat(np.arange(n_u), 5); i = rng.integers(0, n_i, len(u)); y = rng.normal(3.5, 1, len(u)).astype(np.float32)
    me, other = Side(n_u, Kf, None, 'cpu', 2.), Side(n_i, Kf, None, 'cpu', 2.)
    other.th, other.w, me.w = torch.randn(n_i, Kf), torch.rand(n_i) + 0.5, torch.rand(n_u) + 0.5
    me.Lam = torch.tensor([[2., 0.3, 0.], [0.3, 1.5, 0.2], [0., 0.2, 1.]]); me.m = torch.tensor([0.1, -0.2, 0.3])
    pattern = B._csr(u, i, (n_u, n_i), torch.device('cpu'))
    ones, ys = B._spmat(pattern, torch.ones(len(u))), B._spmat(pattern, torch.tensor(y))
    alpha, mu = 1.7, 3.4
    z = torch.cat([torch.ones(n_i, 1), other.th[:, 1:]], 1)
    torch.manual_seed(1)
    with threads(n_threads):
        draws = []
        for _ in range(4000):
            B._vectors(me, other, ones, ys, pattern, alpha, mu, sample=True)
            draws.append(me.th.clone())
    draws = torch.stack(draws).double()  # (4000, n_u, K)
    for row in range(n_u):
        js = np.flatnonzero(u == row)
        zr, wr = z[i[js]].double(), (me.w[row] * other.w[i[js]]).double()
        P = alpha * (wr[:, None, None] * zr[:, :, None] * zr[:, None, :]).sum(0) + me.Lam.double()
        left = torch.tensor(y[js]).double() - mu - other.th[i[js], 0].double()
        b = alpha * (wr[:, None] * left[:, None] * zr).sum(0) + me.Lam.double() @ me.m.double()
        cov = torch.linalg.inv(P)
        mean = cov @ b
        d = draws[:, row]
        se = cov.diagonal().sqrt() / np.sqrt(len(d))
        assert ((d.mean(0) - mean).abs() < 4 * se).all(), (row, d.mean(0), mean)
        assert torch.allclose(torch.cov(d.T), cov, atol=0.1 * cov.diagonal().max().item()), (row, torch.cov(d.T), cov)


def test_cg_step_in_torch_matches_the_compiled_pass():
    "The conjugate-gradient step a GPU takes (PyTorch's operations) moves x, r and d as the compiled pass does."
    from ajtfb_collab.bayes import _cg_step
    from ajtfb_collab.kernels import cg_step
    torch.manual_seed(0)
    A = torch.randn(30, 40); A = A @ A.T / 40 + torch.eye(30)
    x, r, d, diag = torch.randn(30, 4), torch.randn(30, 4), torch.randn(30, 4), torch.diagonal(A).clone()
    Ad, rz = A @ d, (r * r / diag[:, None]).sum(0).double()
    x0, x2, r2, d2 = x.clone(), x.clone(), r.clone(), d.clone()
    want = cg_step(x.numpy(), r.numpy(), d.numpy(), Ad.numpy(), diag.numpy(), rz.numpy())
    got = _cg_step(x2, r2, d2, Ad, diag, rz.float())
    for a, b in zip((x, r, d), (x2, r2, d2)): assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(want, got): assert torch.allclose(torch.from_numpy(a).float(), b, rtol=1e-4)
    assert (x - x0).abs().max() > 1e-2  # the step moved x: the comparison above can fail


def test_pairs_side_by_side_or_in_turn_draw_the_same_chain(monkeypatch):
    "Each prior draws from its side's own stream: on two threads the chain is the same whichever way `sweep` draws its pairs."
    from ajtfb_collab import bayes
    from ajtfb_collab.core import threads
    import scipy.sparse as sps
    u, i, r, _ = low_rank_data(n_users=80, n_items=50, n_ratings=2000, seed=5)
    F = sps.random(81, 30, density=0.2, format='csr', dtype=np.float32, random_state=2)
    posts = {}
    for way in (False, True, None):  # in turn, side by side, the quicker as timed
        monkeypatch.setattr(bayes, 'SIDE_BY_SIDE', way)
        with threads(2): posts[way] = gibbs(u, i, r, 81, 51, n_factors=3, n_iter=12, burn=4, keep=2, user_feats=F, progress=False, device='cpu')
    for way in (True, None):
        assert torch.allclose(posts[way].users, posts[False].users, atol=1e-3) and torch.allclose(posts[way].items, posts[False].items, atol=1e-3)
    assert (posts[False].users[-1] - posts[False].users[0]).abs().max() > 0.01  # kept samples differ: the comparison can fail


@pytest.mark.parametrize('dense_max', [0, 10**7])  # B by conjugate gradients; in the eigenbasis
def test_rescaled_lam_b_draws_have_the_exact_posterior(dense_max):
    "B, then `_rescale`, then lam_b, given fixed vectors: the lam_b draws average to its exact posterior (B integrated out) and spread as it does."
    from ajtfb_collab.bayes import _rescale, _lam_b, _normal_rows, lam_b_posterior
    rng = np.random.default_rng(3); torch.manual_seed(3)
    n, p, K, per_row = 300, 400, 4, 10
    pop = 1 / np.arange(1, p + 1)
    cols = np.stack([rng.choice(p, per_row, replace=False, p=pop / pop.sum()) for _ in range(n)])
    F = sps.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, per_row)), shape=(n, p))
    Lam = torch.diag(torch.linspace(3., 1., K))
    th = torch.from_numpy(F.toarray()) @ _normal_rows(p, 30 * Lam) + _normal_rows(n, Lam)
    exact = Side(n, K, F, 'cpu', lam=1.)  # the eigenbasis, for the exact posterior
    exact.th, exact.m, exact.Lam = th, torch.zeros(K), Lam
    mean, sd = lam_b_posterior(exact, torch.logspace(-1, 3, 4000))
    me = Side(n, K, F, 'cpu', lam=1., dense_max=dense_max)
    assert (me.FQ is None) == (dense_max == 0)
    me.th, me.m, me.Lam = th, torch.zeros(K), Lam
    draws = []
    for _ in range(1200):
        _side_weights(me, sample=True); _rescale(me); _lam_b(me)
        draws.append(me.lam_b)
    draws = np.array(draws[100:])
    assert abs(draws.mean() - mean) < 0.15 * sd, (draws.mean(), mean, sd)  # about three Monte Carlo standard errors
    assert abs(draws.std() / sd - 1) < 0.2, (draws.std(), sd)
