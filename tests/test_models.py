"The chapter's models from scratch, checked against the library code they rewrite, and the way the chapter fits them."
import pytest, torch
import matplotlib
matplotlib.use('Agg')
from fastai.collab import EmbeddingDotBias
from ajtfb_collab.data import collab_dls
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.models import (DotProduct, DotProductBias, ParamDotProductBias, ParamEmbedding, create_params, Recipe,
                                 fit_recipe, model_learner, n_users_items, valid_curve, plot_valid_curves)


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=4)


def test_dot_models_are_what_they_say():
    x = torch.stack([torch.randint(0, 9, (16,)), torch.randint(0, 7, (16,))], 1)
    m = DotProduct(9, 7, 3, y_range=(0, 5.5))
    by_hand = torch.sigmoid((m.user_factors.weight[x[:, 0]] * m.item_factors.weight[x[:, 1]]).sum(1)) * 5.5
    assert torch.allclose(m(x), by_hand)
    ours, theirs = DotProductBias(9, 7, 3), EmbeddingDotBias(3, 9, 7, y_range=(0, 5.5))
    for a, b in [('u_weight', 'user_factors'), ('i_weight', 'item_factors'), ('u_bias', 'user_bias'), ('i_bias', 'item_bias')]:
        getattr(theirs, a).weight.data = getattr(ours, b).weight.data.clone()
    assert torch.allclose(ours(x).squeeze(1), theirs(x))  # fastai's `EmbeddingDotBias` is the same model


def test_create_params_version_is_the_embedding_version():
    x = torch.stack([torch.randint(0, 9, (16,)), torch.randint(0, 7, (16,))], 1)
    pm, em = ParamDotProductBias(9, 7, 3), DotProductBias(9, 7, 3)
    for a in ('user_factors', 'item_factors'): getattr(em, a).weight.data = getattr(pm, a).data.clone()
    for a in ('user_bias', 'item_bias'): getattr(em, a).weight.data = getattr(pm, a).data[:, None].clone()
    assert torch.allclose(pm(x), em(x).squeeze(1)) and len(list(pm.parameters())) == 4
    p = create_params([2000, 10])
    assert isinstance(p, torch.nn.Parameter) and abs(p.std().item() - 0.01) < 1e-3
    e, idx = ParamEmbedding(9, 3), torch.tensor([3, 1, 3])
    assert torch.equal(e(idx), torch.nn.functional.embedding(idx, e.weight))


def test_fit_recipe_is_seeded_and_learns(ratings):
    dls = collab_dls(ratings)
    recipe = Recipe('DotProductBias, wd=0.1', 0.823, model_learner(lambda u, i: DotProductBias(u, i, 8)), epochs=3, lr=1e-2, wd=0.1)
    (learn, row), (_, again) = fit_recipe(recipe, dls, seed=3, progress=False), fit_recipe(recipe, dls, seed=3, progress=False)
    assert list(row) == ['model', 'book_valid_mse', 'valid_mse', 'seconds'] and row['valid_mse'] == again['valid_mse']  # the same seed, the same fit
    assert row['valid_mse'] == valid_curve(learn)[-1] and len(valid_curve(learn)) == 3
    mean_mse = float(((dls.valid_ds.items.rating - dls.train_ds.items.rating.mean()) ** 2).mean())
    assert row['valid_mse'] < 0.8 * mean_mse  # better than predicting the training mean


def test_n_users_items_are_the_vocabularies(ratings):
    dls = collab_dls(ratings)
    assert n_users_items(dls) == (len(dls.classes['user']), len(dls.classes['title']))


def test_plot_valid_curves_marks_the_book():
    ax = plot_valid_curves({'a': [1.0, 0.9], 'b': [1.1, 0.95]}, book={'a': 0.85})
    assert len(ax.lines) == 2 and len(ax.collections) == 1  # one star: only 'a' has a book figure
    assert [l.get_ydata().tolist() for l in ax.lines] == [[1.0, 0.9], [1.1, 0.95]]
