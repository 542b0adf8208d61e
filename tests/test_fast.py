"The fast path: tensor DataLoaders, a model of several members, the per-rating L2, the lean Learner, sparse tables."
import math
import numpy as np, pytest, torch
from fastai.collab import CollabDataLoaders, EmbeddingDotBias
from fastai.torch_core import set_seed
from fastai.learner import Learner
from fastai.callback.core import Callback
from ajtfb_collab.core import BadValueError, random_split
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.fast import (SliceDL, fast_collab_dls, FastDotBias, member_mse, FastLearner, fast_collab_learner, fast_fit, auto_bs,
                               LazyAdam, TrimHeap)
from ajtfb_collab.inference import predict_ratings


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=120, n_items=50, n_ratings=4000, n_factors=3, noise=0.3, seed=11)


def test_slice_dl_covers_each_row_once_and_reshuffles():
    dl = SliceDL(torch.arange(14).view(7, 2), torch.arange(7.), bs=3, shuffle=True, seed=0)
    assert len(dl) == 3
    epochs = [torch.cat([y for _, y in dl]) for _ in range(3)]
    for e in epochs: assert sorted(e.tolist()) == list(range(7))
    assert any(not torch.equal(epochs[0], e) for e in epochs[1:])
    for x, y in dl: assert torch.equal(x[:, 0] // 2, y.long())  # rows stay paired
    assert [y.tolist() for _, y in dl.new(shuffle=False)] == [[0., 1., 2.], [3., 4., 5.], [6.]]
    again = SliceDL(torch.arange(14).view(7, 2), torch.arange(7.), bs=3, shuffle=True, seed=0)
    assert torch.equal(torch.cat([y for _, y in again]), epochs[0])  # same seed, same order


@pytest.mark.parametrize('n,bs,world', [(1000, 7, 2), (1001, 8, 3), (9, 4, 2), (30, 1, 4), (3, 5, 3), (17, 16, 2)])
def test_slice_dl_shards_cover_each_row_once_in_equal_steps(n, bs, world):
    "Each process's share: every row once an epoch across the processes, the same steps each, the one-process batches of bs * world."
    make = lambda b: SliceDL(torch.arange(2 * n).view(n, 2), torch.arange(n * 1.), bs=b, shuffle=True, seed=5)
    shards = [make(bs).shard(r, world) for r in range(world)]
    for _ in range(2):  # two epochs: a new order each, the same on every process
        epochs = [[y.long().tolist() for _, y in dl] for dl in shards]
        assert len({len(e) for e in epochs}) == 1 and len(shards[0]) == len(epochs[0])
        assert sorted(sum(sum(epochs, []), [])) == list(range(n))
        for step in zip(*epochs): assert max(map(len, step)) - min(map(len, step)) <= 1 and min(map(len, step)) >= 1
    one, sharded = make(bs * world), [make(bs).shard(r, world) for r in range(world)]
    whole = [sorted(y.long().tolist()) for _, y in one]
    steps = [sorted(sum((y.long().tolist() for _, y in step), [])) for step in zip(*sharded)]
    assert steps[:-1] == whole[:len(steps) - 1] and steps[-1] == sorted(sum(whole[len(steps) - 1:], []))
    with pytest.raises(BadValueError, match='rank must be in'): make(bs).shard(world, world)


def test_fast_dls_match_fastai(ratings):
    ref = CollabDataLoaders.from_df(ratings, item_name='title', valid_pct=0.2, seed=42, bs=64)
    dls = fast_collab_dls(ratings)
    assert [list(v) for v in dls.classes.values()] == [list(v) for v in ref.classes.values()]
    assert torch.equal(dls.train.x, torch.tensor(ref.train.xs.values))
    assert torch.equal(dls.valid.y, torch.tensor(ref.valid.ys.values, dtype=torch.float32).view(-1))


def test_fast_dls_errors_and_explicit_valid(ratings):
    with pytest.raises(ValueError, match="no column 'nope'"): fast_collab_dls(ratings, item_name='nope')
    with pytest.raises(ValueError, match='valid_pct'): fast_collab_dls(ratings, valid_pct=1.0)
    dls = fast_collab_dls(ratings.iloc[:3000], valid=ratings.iloc[3000:])
    assert dls.train.n == 3000 and dls.valid.n == 1000
    assert fast_collab_dls(ratings, valid_pct=0).valid.n == 0


def test_one_member_is_embedding_dot_bias():
    fdb, edb = FastDotBias(9, 6, 3), EmbeddingDotBias(3, 9, 6, y_range=(0, 5.5))
    for name in ('u_weight', 'i_weight', 'u_bias', 'i_bias'):
        w = torch.randn_like(getattr(fdb, name).weight)
        getattr(fdb, name).weight.data, getattr(edb, name).weight.data = w.clone(), w.clone()
    x = torch.stack([torch.randint(0, 9, (20,)), torch.randint(0, 6, (20,))], 1)
    assert torch.allclose(fdb.eval()(x), edb(x).view(-1), atol=1e-5)


def test_members_are_independent():
    "The gradient of one member's loss never reaches another member's weights."
    m = FastDotBias(9, 6, 3, n_members=2).train()
    x = torch.stack([torch.randint(0, 9, (20,)), torch.randint(0, 6, (20,))], 1)
    m(x)[:, 0].sum().backward()
    assert m.u_weight.weight.grad[:, 3:].abs().sum() == 0 and m.u_weight.weight.grad[:, :3].abs().sum() > 0
    assert m.i_bias.weight.grad[:, 1].abs().sum() == 0
    assert torch.isclose(member_mse(torch.tensor([[1., 3.]]), torch.tensor([2.])), torch.tensor(1.))


def test_fast_learner_learns_and_predicts(ratings):
    dls = fast_collab_dls(ratings, bs=128)
    set_seed(0); learn = fast_collab_learner(dls, n_factors=8, n_members=2, lam=0.05)
    with learn.no_bar(), learn.no_logging(): fast_fit(learn, epochs=10, lr=3e-2)
    valid_mse = learn.recorder.values[-1][1]
    assert valid_mse < 0.4 * dls.valid.y.var().item()  # far better than predicting the mean (about 0.2 of it)
    preds, targs = learn.get_preds()
    assert preds.shape == (dls.valid.n,) and math.isclose(((preds - targs) ** 2).mean().item(), valid_mse, rel_tol=1e-4)
    some = ratings.iloc[random_split(len(ratings))[0][:4]]  # training rows: users and titles all known
    assert np.allclose(predict_ratings(learn, some), learn.model.eval()(dls.train.x[:4]).detach().numpy(), atol=1e-5)


def test_lr_find_runs_through_the_learner(ratings, tmp_path):
    learn = fast_collab_learner(fast_collab_dls(ratings, bs=256), n_factors=4, path=tmp_path)
    with learn.no_bar(): res = learn.lr_find(num_it=30, show_plot=False)
    assert 1e-5 < res.valley < 1


def test_penalty_shrinks_factors(ratings):
    dls = fast_collab_dls(ratings, bs=256)
    sizes = {}
    for lam in (0., 1.):
        set_seed(0); learn = fast_collab_learner(dls, n_factors=8, lam=lam)
        with learn.no_bar(), learn.no_logging(): fast_fit(learn, epochs=3)
        sizes[lam] = learn.model.u_weight.weight.norm().item()
    assert sizes[1.] < 0.5 * sizes[0.]


def test_learner_rejects_bad_sizes(ratings):
    with pytest.raises(ValueError, match='n_members'): fast_collab_learner(fast_collab_dls(ratings), n_members=0)


class CountBatches(Callback):
    def __init__(self): self.n = 0
    def after_batch(self): self.n += 1


def test_fast_learner_is_learner_bit_for_bit(ratings):
    dls = fast_collab_dls(ratings, bs=256)
    vals = {}
    for cls in (Learner, FastLearner):
        set_seed(1); dls.train.rng.manual_seed(1)
        learn = fast_collab_learner(dls, n_factors=4); learn.__class__ = cls
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
        vals[cls] = (learn.recorder.values, [p.detach().clone() for p in learn.model.parameters()])
    assert vals[Learner][0] == vals[FastLearner][0]
    assert all(torch.equal(a, b) for a, b in zip(vals[Learner][1], vals[FastLearner][1]))


def test_fast_learner_sees_callbacks_added_later(ratings):
    dls = fast_collab_dls(ratings, bs=512)
    learn = fast_collab_learner(dls, n_factors=4)
    assert isinstance(learn, FastLearner)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    cb = CountBatches(); learn.add_cb(cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert cb.n == len(dls.train) + len(dls.valid)
    once = CountBatches()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, cbs=once)  # callbacks of one fit only
    assert once.n == cb.n / 2 and once not in learn.cbs
    learn.remove_cb(cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert cb.n == 2 * (len(dls.train) + len(dls.valid))  # removed: no longer called


def test_sparse_path(ratings):
    dls = fast_collab_dls(ratings, bs=128)
    set_seed(0); learn = fast_collab_learner(dls, n_factors=8, lam=0.05, sparse=True)
    with learn.no_bar(), learn.no_logging(): fast_fit(learn, epochs=10, lr=3e-2)
    assert isinstance(learn.opt.opt, LazyAdam) and learn.model.u_weight.sparse
    assert [cb.every for cb in learn.cbs if isinstance(cb, TrimHeap)] == [100]
    assert learn.recorder.values[-1][1] < 0.5 * dls.valid.y.var().item()
    assert not fast_collab_learner(dls).model.u_weight.sparse  # small tables: dense by default


def _adam_steps(opt_cls, steps=30, seed=0, **kwargs):
    "A factor table and a bias table, sparse, trained on the same batches (rows repeated within each)."
    torch.manual_seed(seed)
    embs = torch.nn.ModuleList([torch.nn.Embedding(300, 8, sparse=True), torch.nn.Embedding(300, 1, sparse=True)])
    opt = opt_cls(embs.parameters(), lr=3e-2, betas=(0.9, 0.99), eps=1e-5, **kwargs)
    for s in range(steps):
        x = torch.randint(0, 60 if s % 2 else 300, (128,))  # every other batch: a fifth of the rows, many repeats
        opt.zero_grad(); (embs[0](x).pow(2).sum() + (embs[1](x) - 1).pow(2).sum()).backward(); opt.step()
    return embs, opt


@pytest.mark.parametrize('maximize', [False, True])
def test_lazy_adam_is_torchs_sparse_adam(maximize):
    "Same weights and state as torch's `SparseAdam` (with `maximize`, torch's own update runs); torch's optimiser can go on from its state."
    (ours, lazy), (ref, torch_opt) = _adam_steps(LazyAdam, maximize=maximize), _adam_steps(torch.optim.SparseAdam, maximize=maximize)
    for a, b in zip(ours.parameters(), ref.parameters()): assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    for a, b in zip(lazy.state.values(), torch_opt.state.values()):
        assert a['step'] == b['step'] == 30
        for k in ('exp_avg', 'exp_avg_sq'): assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert all((s == -1).all() for s in lazy.slots.values())  # every slot handed back
    cont = torch.optim.SparseAdam(ours.parameters(), lr=3e-2, betas=(0.9, 0.99), eps=1e-5, maximize=maximize)
    cont.load_state_dict(lazy.state_dict())  # the same state layout
    assert all(cont.state[p]['step'] == 30 for p in ours.parameters())


def test_lazy_adam_refuses_dense_gradients():
    p = torch.nn.Parameter(torch.zeros(4, 2)); p.grad = torch.ones(4, 2)
    with pytest.raises(RuntimeError, match='sparse gradients'): LazyAdam([p]).step()


def test_trim_heap_counts_training_batches():
    th = TrimHeap(every=2); calls = []; th.trim = calls.append
    th.training = True
    for _ in range(5): th.after_batch()
    th.training = False; th.after_batch()
    assert (calls, th.n) == ([0, 0], 5)


def test_save_load_round_trip(ratings, tmp_path):
    from ajtfb_collab.inference import save_model, load_model
    dls = fast_collab_dls(ratings, bs=256)
    set_seed(0); learn = fast_collab_learner(dls, n_factors=4, n_members=3)
    with learn.no_bar(), learn.no_logging(): fast_fit(learn, epochs=2)
    loaded = load_model(save_model(learn, tmp_path/'model.pth'))
    assert type(loaded.model) is FastDotBias and loaded.model.n_members == 3
    some = ratings.iloc[:50]
    assert np.allclose(predict_ratings(loaded, some, on_unknown='fallback'),
                       predict_ratings(learn, some, on_unknown='fallback'), atol=1e-6)


def test_fast_learner_overrides_the_pinned_fastai():
    "`FastLearner` replaces fastai's private `Learner._call_one`: if fastai changes it, this fails and the override is re-checked."
    import hashlib, inspect, fastai
    from fastai.learner import Learner
    src = inspect.getsource(Learner._call_one)
    assert (fastai.__version__, hashlib.sha1(src.encode()).hexdigest()[:12]) == ('2.8.7', '705a60752c69'), src


def test_auto_bs_keeps_about_fifty_steps_for_small_tables():
    assert auto_bs(80_000) == 1024 and auto_bs(2_000) == 64 and auto_bs(10_000) == 128
    assert auto_bs(0) == 64


# --- compiled SGD, one rating at a time ---
from ajtfb_collab.fast import sgd_epoch, sgd_predict, sgd_grid, SGDLearner, SGD


def _tables(n_users, n_items, k, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n_users, k)) * 0.1).astype(np.float32), (rng.standard_normal((n_items, k)) * 0.1).astype(np.float32),
            (rng.standard_normal(n_users) * 0.1).astype(np.float32), (rng.standard_normal(n_items) * 0.1).astype(np.float32)]


@pytest.mark.parametrize('y_range', [(0., 5.5), None])
def test_sgd_epoch_is_autograd_sgd_one_rating_at_a_time(y_range):
    "Each step of the compiled pass is a step of size lr down the gradient torch computes for that rating's loss."
    rng = np.random.default_rng(1)
    n_users, n_items, k, n, lr, lam = 9, 7, 5, 60, 0.03, 0.05
    u, i = rng.integers(0, n_users, n).astype(np.int32), rng.integers(0, n_items, n).astype(np.int32)
    r = rng.integers(1, 6, n).astype(np.float32)
    start = _tables(n_users, n_items, k)
    ref = [torch.tensor(a) for a in start]
    sq = 0.
    for j in range(n):
        P, Q, bu, bi = [t.clone().requires_grad_() for t in ref]
        x = (P[u[j]] * Q[i[j]]).sum() + bu[u[j]] + bi[i[j]]
        pred = x if y_range is None else torch.sigmoid(x) * (y_range[1] - y_range[0]) + y_range[0]
        sq += float((pred.detach() - float(r[j])) ** 2)
        ((pred - float(r[j])) ** 2 + lam * ((P[u[j]] ** 2).sum() + (Q[i[j]] ** 2).sum())).backward()
        ref = [(t - lr * t.grad).detach() for t in (P, Q, bu, bi)]
    P, Q, bu, bi = (a.copy() for a in start)
    lo, hi = y_range or (0., 0.)
    sse = sgd_epoch(u, i, r, np.array([0]), np.array([0, n]), P, Q, bu, bi, lr, lam, lo, hi)
    for a, t in zip((P, Q, bu, bi), ref): np.testing.assert_allclose(a, t.numpy(), atol=2e-5)
    assert math.isclose(sse, sq, rel_tol=1e-4)
    m = FastDotBias(n_users, n_items, k, y_range)
    for emb, a in zip((m.u_weight, m.i_weight, m.u_bias, m.i_bias), (P, Q, bu[:, None], bi[:, None])): emb.weight.data = torch.tensor(a)
    xb = torch.tensor(np.stack([u, i], 1), dtype=torch.long)
    np.testing.assert_allclose(sgd_predict(u, i, P, Q, bu, bi, lo, hi), m.eval()(xb).detach().numpy(), atol=1e-5)


def test_sgd_epoch_visits_only_the_blocks_given():
    P, Q, bu, bi = _tables(4, 4, 3)
    before = [a.copy() for a in (P, Q, bu, bi)]
    u, i, r = np.array([0, 1, 2, 3], np.int32), np.array([0, 1, 2, 3], np.int32), np.full(4, 3., np.float32)
    sgd_epoch(u, i, r, np.array([1]), np.array([0, 2, 4]), P, Q, bu, bi, 0.1, 0., 0., 5.5)  # block 1: ratings 2 and 3
    for a, b in zip((P, Q), before[:2]):
        np.testing.assert_array_equal(a[:2], b[:2])  # rows of block 0's users and items untouched
        assert not np.allclose(a[2:], b[2:])


def test_sgd_grid_orders_by_block_randomly_within():
    rng = np.random.default_rng(2)
    u, i = rng.integers(0, 50, 3000).astype(np.int32), rng.integers(0, 30, 3000).astype(np.int32)
    order, starts = sgd_grid(u, i, rows=16, seed=0)
    assert sorted(order) == list(range(3000))  # every rating once
    n_ib = 30 // 16 + 1
    assert len(starts) == (50 // 16 + 1) * n_ib + 1 and starts[-1] == 3000
    blocks = u[order] // 16 * n_ib + i[order] // 16
    assert (np.repeat(np.arange(len(starts) - 1), np.diff(starts)) == blocks).all()
    first = order[starts[0]:starts[1]]
    assert not (np.diff(first) > 0).all()  # random within a block, not in table order
    assert (sgd_grid(u, i, rows=16, seed=0)[0] == order).all() and not (sgd_grid(u, i, rows=16, seed=1)[0] == order).all()


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
