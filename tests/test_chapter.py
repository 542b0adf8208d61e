"The chapter's recipes and fits, on small synthetic ratings."
import numpy as np, pandas as pd, pytest, torch
import matplotlib
matplotlib.use('Agg')
from fastai.collab import EmbeddingDotBias, EmbeddingNN
from fastai.tabular.core import TabDataLoader, TabWeightedDL
from ajtfb_collab.core import BadValueError, TrainRecipe
from ajtfb_collab.data import synthetic_ratings, collab_dls
from ajtfb_collab.models import DotProduct, DotProductBias, ParamDotProductBias, CollabNN
from ajtfb_collab.chapter import (BOOK, STOCK, BOOK_NN, Recipe, chapter_recipes, fit_recipe, n_users_items, valid_curve,
                                  plot_valid_curves, reproduce_chapter, RESULT_COLUMNS)


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=4)


def test_the_books_recipe_is_written_once():
    assert (BOOK.epochs, BOOK.lr, BOOK.wd, BOOK.dls_kwargs, BOOK.learner_kwargs) == (5, 5e-3, 0.1, {'bs': 64}, {'n_factors': 50})
    assert STOCK.dls_kwargs == {'bs': 64, 'with_replacement': True} and STOCK.learner_kwargs == BOOK.learner_kwargs
    assert BOOK_NN.learner_kwargs == {'use_nn': True, 'layers': [100, 50]} and BOOK_NN.wd == 0.1
    book = next(r for r in chapter_recipes() if r.name == 'collab_learner')
    assert (book.epochs, book.lr, book.wd) == (BOOK.epochs, BOOK.lr, BOOK.wd)


def test_recipes_build_the_books_models(ratings):
    dls = collab_dls(ratings)
    types = [type(r.make(dls).model) for r in chapter_recipes()]
    assert types == [DotProduct, DotProduct, DotProduct, DotProductBias, DotProductBias, ParamDotProductBias,
                     EmbeddingDotBias, CollabNN, EmbeddingNN]
    assert [r.book_valid_mse for r in chapter_recipes()] == [0.985, 0.884, 0.878, 0.893, 0.823, 0.824, 0.822, 0.867, 0.865]
    assert n_users_items(dls) == (len(dls.classes['user']), len(dls.classes['title']))
    assert type(STOCK.dls(ratings).train) is TabWeightedDL and type(BOOK.dls(ratings).train) is TabDataLoader


def test_fit_recipe_is_seeded_and_learns(ratings):
    dls = collab_dls(ratings)
    recipe = Recipe('DotProductBias, wd=0.1', 0.823, chapter_recipes()[4].make, epochs=3, lr=1e-2, wd=0.1)
    (learn, row), (_, again) = fit_recipe(recipe, dls, seed=3, progress=False), fit_recipe(recipe, dls, seed=3, progress=False)
    assert list(row) == RESULT_COLUMNS and row['valid_mse'] == again['valid_mse']  # the same seed, the same fit
    assert row['valid_mse'] == valid_curve(learn)[-1] and len(valid_curve(learn)) == 3
    mean_mse = float(((dls.valid_ds.items.rating - dls.train_ds.items.rating.mean()) ** 2).mean())
    assert row['valid_mse'] < 0.8 * mean_mse  # better than predicting the training mean


def test_book_recipe_trains_from_a_table(ratings):
    learn = BOOK.but(epochs=3).train(ratings, progress=False)
    assert isinstance(learn.model, EmbeddingDotBias) and learn.model.y_range == (0, 5.5)
    assert learn.recorder.values[-1][1] < 0.8 * ratings.rating.var()
    with pytest.raises(BadValueError, match='3 rating'): BOOK.train(ratings.head(3))


def test_reproduce_chapter_subset_and_unknown(ratings):
    kept = {}
    t = reproduce_chapter(ratings, names=['DotProduct + sigmoid_range'], progress=False, learners=kept)
    assert list(t.columns) == RESULT_COLUMNS and t.model.tolist() == ['DotProduct + sigmoid_range']
    assert t.valid_mse.item() == valid_curve(kept['DotProduct + sigmoid_range'])[-1]
    with pytest.raises(BadValueError, match=r"unknown recipe\(s\) \['nope'\]"): reproduce_chapter(ratings, names=['nope'])


def test_plot_valid_curves_marks_the_book():
    ax = plot_valid_curves({'a': [1.0, 0.9], 'b': [1.1, 0.95]}, book={'a': 0.85})
    assert len(ax.lines) == 2 and len(ax.collections) == 1  # one star: only 'a' has a book figure
    assert [l.get_ydata().tolist() for l in ax.lines] == [[1.0, 0.9], [1.1, 0.95]]
