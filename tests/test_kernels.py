"The kernels: each compiled loop and fused step against the plain code it replaces."
import math
import numpy as np, pytest, torch
from fastai.collab import EmbeddingDotBias
from ajtfb_collab.fast import FastDotBias
from ajtfb_collab.kernels import (LazyAdam, TrimHeap, sgd_epoch, sgd_predict, sgd_grid, softmax_ce, sampled_logits, Scratch,
                                  KeptGradAdamW, hits)


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




def test_hits_finds_every_pair_of_a_row_and_a_draw_of_its_item():
    pos, neg = torch.tensor([3, 1, 3, 7]), torch.tensor([3, 5, 3, 1, 9])
    rows, cols = hits(pos, neg)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 0), (0, 2), (1, 3), (2, 0), (2, 2)]


def test_softmax_ce_with_scratch_is_cross_entropy_step_after_step():
    "With kept blocks, three training steps give cross_entropy's losses and gradients, and reuse one block."
    torch.manual_seed(0)
    sc, ptrs = Scratch(), set()
    for _ in range(3):
        x = torch.randn(40, 300, requires_grad=True); t = torch.randint(0, 300, (40,))
        loss = softmax_ce(x, t, sc); g, = torch.autograd.grad(loss, x)
        ref = torch.nn.functional.cross_entropy(x, t); g_ref, = torch.autograd.grad(ref, x)
        assert torch.allclose(loss, ref, atol=1e-6) and torch.allclose(g, g_ref, atol=1e-7)
        ptrs.add(g.data_ptr())
    assert len(ptrs) == 1


def test_kept_grad_adamw_is_adamw_on_sparse_gradients():
    def run(opt_cls, sparse):
        torch.manual_seed(0); e = torch.nn.Embedding(40, 3, sparse=sparse)
        opt = opt_cls(e.parameters(), lr=0.05, weight_decay=0.5)
        for _ in range(4): e(torch.randint(0, 40, (32,))).sum().backward(); opt.step(); opt.zero_grad()
        return e.weight.detach()
    assert torch.allclose(run(KeptGradAdamW, True), run(torch.optim.AdamW, False), atol=1e-6)
