"The fast path: tensor DataLoaders, a model of several members, the per-rating L2, the lean Learner, sparse tables."
import math
import numpy as np, pytest, torch
from fastai.collab import CollabDataLoaders, EmbeddingDotBias
from fastai.torch_core import set_seed
from fastai.learner import Learner
from fastai.callback.core import Callback
from ajtfb_collab.core import BadValueError, random_split
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.fast import SliceDL, fast_collab_dls, FastDotBias, member_mse, FastLearner, fast_collab_learner, fast_fit, auto_bs
from ajtfb_collab.kernels import LazyAdam, TrimHeap
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
