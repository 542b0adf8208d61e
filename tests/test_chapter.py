"The chapter's neural network, its recipes written once, and the whole chapter's table."
import pytest, torch
from fastai.collab import EmbeddingDotBias, EmbeddingNN
from fastai.tabular.core import TabDataLoader, TabWeightedDL
from ajtfb_collab.core import BadValueError
from ajtfb_collab.data import collab_dls
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.models import DotProduct, DotProductBias, ParamDotProductBias, valid_curve
from ajtfb_collab.chapter import BOOK, STOCK, BOOK_NN, CollabNN, chapter_recipes, reproduce_chapter, RESULT_COLUMNS


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
    assert type(STOCK.dls(ratings).train) is TabWeightedDL and type(BOOK.dls(ratings).train) is TabDataLoader


def test_collab_nn_concatenates_embeddings_of_any_sizes():
    m = CollabNN((9, 5), (7, 3), n_act=20)
    x = torch.stack([torch.randint(0, 9, (16,)), torch.randint(0, 7, (16,))], 1)
    out = m(x)
    assert out.shape == (16, 1) and ((out > 0) & (out < 5.5)).all() and m.layers[0].in_features == 5 + 3


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
