"Every model kind through every function that reads a trained model: one parametrized matrix on a small fixture."
import numpy as np, pandas as pd, pytest, torch
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.collab import collab_learner
from fastai.tabular.model import get_emb_sz
from ajtfb_collab.core import BadValueError, UnknownNameError, seed_all, squash
from ajtfb_collab.data import collab_dls
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.models import DotProduct, DotProductBias, ParamDotProductBias
from ajtfb_collab.chapter import CollabNN
from ajtfb_collab.kinds import model_kind, build_model
from ajtfb_collab.fast import FAST
from ajtfb_collab.bayes import BAYES
from ajtfb_collab.interpret import item_biases, item_factors, plot_item_biases, plot_item_pca, most_similar, member_cosine
from ajtfb_collab.inference import predict_ratings, recommend, save_model, load_model, CollabModel
from ajtfb_collab.coldstart import fold_in_answers, user_parts, score_users, recommend_new_user


K = 6  # factors


def _chapter(model_fn):
    def make(dls):
        n_u, n_i = (len(v) for v in dls.classes.values())
        return Learner(dls, model_fn(n_u, n_i), loss_func=MSELossFlat())
    return make


MAKERS = {
    'DotProduct': _chapter(lambda u, i: DotProduct(u, i, K, y_range=(0, 5.5))),
    'DotProductBias': _chapter(lambda u, i: DotProductBias(u, i, K)),
    'ParamDotProductBias': _chapter(lambda u, i: ParamDotProductBias(u, i, K)),
    'CollabNN': lambda dls: Learner(dls, CollabNN(*get_emb_sz(dls)), loss_func=MSELossFlat()),
    'EmbeddingDotBias': lambda dls: collab_learner(dls, n_factors=K, y_range=(0, 5.5)),
    'EmbeddingNN': lambda dls: collab_learner(dls, use_nn=True, layers=[16, 8], y_range=(0, 5.5)),
    'FastDotBias': 1, 'FastDotBias x3': 3,  # trained through the fast recipe with this many members
    'BayesDot': 'bayes',  # sampled: its kept posterior samples are its members
}


MEMBERS = {'FastDotBias x3': 3, 'BayesDot': 5}


KINDS = list(MAKERS)


BIASED = {'DotProductBias', 'ParamDotProductBias', 'EmbeddingDotBias', 'FastDotBias', 'FastDotBias x3', 'BayesDot'}


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=60, n_items=30, n_ratings=1500, seed=1)


@pytest.fixture(scope='module')
def learners(ratings):
    out = {}
    for name, make in MAKERS.items():
        if make == 'bayes':
            torch.manual_seed(0)
            out[name] = BAYES.but(n_factors=K, epochs=40, burn=10, keep=5, side=('implicit',)).train(ratings, progress=False)
        elif isinstance(make, int):
            out[name] = FAST.but(n_factors=K, n_members=make, epochs=6, dls_kwargs=dict(bs=64)).train(ratings, progress=False)
        else:
            dls = collab_dls(ratings, bs=64)
            seed_all(dls, 0)
            learn = make(dls)
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(4, 1e-2)
            out[name] = learn
    return out


@pytest.fixture(scope='module')
def loaded(learners, tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    return {k: load_model(save_model(l, d/f'{k}.pth')) for k, l in learners.items()}


def both(learners, loaded, kind):
    return [learners[kind], loaded[kind]]


@pytest.mark.parametrize('kind', KINDS)
def test_kind_reads_the_model(learners, kind):
    learn = learners[kind]
    k = model_kind(learn.model)
    n_users, n_items = (len(v) for v in learn.dls.classes.values())
    assert len(k.user_factors()) == n_users and len(k.item_factors()) == n_items
    assert k.n_members == MEMBERS.get(kind, 1)
    assert (k.item_bias() is not None) == (kind in BIASED)
    x = learn.dls.valid.one_batch()[0][:20].cpu()
    u, i = x[:, 0], x[:, 1]
    b = k.user_bias()
    scored = k.score(k.user_factors()[u], None if b is None else b[u], i).detach().numpy()
    np.testing.assert_allclose(scored, k.predict(u, i), atol=1e-5)  # a user given as its own vector scores as itself
    assert type(build_model(k.spec())) is type(learn.model)
    us, its = u[:4].numpy(), np.arange(n_items)  # every item for four users: the same scores as the pairs one by one
    pairs = k.predict(np.repeat(us, n_items), np.tile(its, len(us))).reshape(len(us), n_items)
    np.testing.assert_allclose(k.score_items(us, its).numpy(), pairs, atol=1e-5)


@pytest.mark.parametrize('kind', KINDS)
def test_item_biases_and_factors(learners, loaded, kind):
    for learn in both(learners, loaded, kind):
        k, items = model_kind(learn.model), list(list(learn.dls.classes.values() if hasattr(learn, 'dls') else learn.classes.values())[1])
        f = item_factors(learn)
        assert list(f.index) == items[1:] and f.shape[1] == k.item_factors().shape[1]
        np.testing.assert_allclose(f.values, k.item_factors()[1:].numpy())
        if kind in BIASED:
            b = item_biases(learn)
            np.testing.assert_allclose(b.values, k.item_bias()[1:].mean(1).numpy(), rtol=1e-6)  # the members' mean
            ax = plot_item_biases(learn, n=4)
            assert len(ax.patches) == 8
            plt.close(ax.figure)
        else:
            with pytest.raises(BadValueError, match='has no item biases'): item_biases(learn)


@pytest.mark.parametrize('kind', KINDS)
def test_plot_item_pca(learners, loaded, ratings, kind):
    for learn in both(learners, loaded, kind):
        ax = plot_item_pca(learn, ratings, n=12)
        assert len(ax.texts) == 12
        plt.close(ax.figure)


@pytest.mark.parametrize('kind', KINDS)
def test_most_similar(learners, loaded, kind):
    ref = most_similar(learners[kind], 'Movie 2', n=4)
    k = model_kind(learners[kind].model)
    items = list(learners[kind].dls.classes['title'])
    sims = member_cosine(k.item_factors(), items.index('Movie 2'), k.n_members).numpy()
    sims[[0, items.index('Movie 2')]] = -np.inf
    assert ref.title.tolist() == [items[j] for j in np.argsort(-sims)[:4]]  # by hand
    assert 'Movie 2' not in ref.title.values and ref.similarity.is_monotonic_decreasing
    pd.testing.assert_frame_equal(most_similar(loaded[kind], 'Movie 2', n=4), ref)
    with pytest.raises(UnknownNameError, match="unknown title 'Movie 999'"): most_similar(learners[kind], 'Movie 999')


@pytest.mark.parametrize('kind', KINDS)
def test_predict_ratings_both_modes(learners, loaded, ratings, kind):
    learn = learners[kind]
    k = model_kind(learn.model)
    known = ratings.iloc[:50]
    users, items = (list(v) for v in learn.dls.classes.values())
    known = known[known.user.isin(users) & known.title.isin(items)]
    x = torch.tensor([[users.index(u), items.index(t)] for u, t in zip(known.user, known.title)])
    expected = learn.model.eval()(x).detach().reshape(-1).numpy()
    for l in both(learners, loaded, kind):
        np.testing.assert_allclose(predict_ratings(l, known), expected, atol=1e-5)
    new = pd.DataFrame({'user': [10_000, users[3]], 'title': [items[5], 'Movie 999']})
    with pytest.raises(UnknownNameError, match=r"1 unknown user\(s\): 10000; 1 unknown item\(s\): 'Movie 999'"):
        predict_ratings(learn, new)
    fb = predict_ratings(learn, new, on_unknown='fallback')
    if kind in BIASED:  # a zero vector and the mean bias on the unknown side, per member, averaged
        ub, ib = k.user_bias()[1:], k.item_bias()[1:]
        want = [squash(ub.mean(0) + ib[4], k.y_range).mean().item(), squash(ub[2] + ib.mean(0), k.y_range).mean().item()]
    else:  # the mean prediction over the known users / items
        want = [k.predict(np.arange(1, len(users)), np.full(len(users) - 1, 5)).mean(),
                k.predict(np.full(len(items) - 1, 3), np.arange(1, len(items))).mean()]
    np.testing.assert_allclose(fb, want, atol=1e-5)
    np.testing.assert_allclose(predict_ratings(loaded[kind], new, on_unknown='fallback'), fb, atol=1e-5)


@pytest.mark.parametrize('kind', KINDS)
def test_recommend(learners, loaded, ratings, kind):
    learn = learners[kind]
    items = list(learn.dls.classes['title'])[1:]
    every = predict_ratings(learn, pd.DataFrame({'user': 3, 'title': items}))
    recs = recommend(learn, 3, n=5)
    assert recs.title.tolist() == [items[j] for j in np.argsort(-every, kind='stable')[:5]]
    seen = recommend(learn, '3', n=100, seen=ratings)  # typed text is the user 3
    assert not seen.title.isin(ratings[ratings.user == 3].title).any() and seen.prediction.is_monotonic_decreasing
    pd.testing.assert_frame_equal(recommend(loaded[kind], 3, n=5), recs)


@pytest.mark.parametrize('kind', KINDS)
def test_fold_in_and_new_user(learners, loaded, ratings, kind):
    learn = learners[kind]
    answers = ratings[ratings.user == 5][['title', 'rating']].assign(user='new').head(15)
    uf, ub = user_parts(learn.model)
    rows = np.zeros(len(answers), dtype=int)
    prior = score_users(learn, uf[1:].mean(0)[None], None if ub is None else ub[1:].mean(0)[None], rows, answers.title)
    _, v, b = fold_in_answers(learn, answers, lam=0.1)
    fitted = score_users(learn, v, b, rows, answers.title)
    rmse = lambda p: np.sqrt(np.mean((p - answers.rating.values) ** 2))
    assert rmse(fitted) < rmse(prior) - 0.05  # the new user's vector fits their answers
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in learn.model.parameters())  # the model untouched
    for l in both(learners, loaded, kind):
        recs = recommend_new_user(l, answers[['title', 'rating']].head(5), n=6)
        assert len(recs) == 6 and recs.prediction.is_monotonic_decreasing
        assert not recs.title.isin(answers.title.head(5)).any()


@pytest.mark.parametrize('kind', KINDS)
def test_fold_in_is_the_kinds_own(learners, kind):
    "`fold_in_answers` is the kind's `fold_in` on the answers' rows: with no steps, the mean user (a Bayes model answers exactly, whatever the steps)."
    learn = learners[kind]
    answers = pd.DataFrame({'user': ['a', 'a', 'b'], 'title': ['Movie 1', 'Movie 2', 'Movie 3'], 'rating': [5, 1, 4]})
    users, v, b = fold_in_answers(learn, answers, steps=0)
    k = model_kind(learn.model)
    assert users == ['a', 'b'] and v.shape == (2, k.user_factors().shape[1])
    if kind != 'BayesDot':
        mv, mb = k.mean_user()
        assert torch.allclose(v, mv.expand(2, -1)) and (b is None) == (mb is None)
    with pytest.raises(UnknownNameError, match='unknown item'): fold_in_answers(learn, answers.assign(title='Movie 999'))


@pytest.mark.parametrize('kind', KINDS)
def test_loaded_model_describes_itself(loaded, kind):
    m = loaded[kind]
    assert isinstance(m, CollabModel)
    text = repr(m)
    assert text.startswith(f'CollabModel({type(m.model).__name__}: ') and "ratings in 'rating'" in text
    assert len(text) < 200 and 'Movie 17' not in text  # a summary, not the vocabulary


def test_build_model_finds_a_kind_registered_by_a_module_not_imported_yet():
    "A file names its model's module; an older one without it makes `build_model` import the package's modules to find the kind."
    import subprocess, sys
    for extra in (", 'module': 'ajtfb_collab.rank'", ''):
        code = ("import sys\nfrom ajtfb_collab.kinds import build_model\nassert 'ajtfb_collab.rank' not in sys.modules\n"
                f"m = build_model({{'kind': 'SoftmaxDot', 'n_users': 5, 'n_items': 4, 'n_factors': 3{extra}}})\nprint(type(m).__name__)")
        res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and res.stdout.strip() == 'SoftmaxDot', res.stdout + res.stderr
