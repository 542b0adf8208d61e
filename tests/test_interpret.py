"Reading a trained model: biases, factors, the PCA map, similarity."
import numpy as np, pytest, torch
import matplotlib
matplotlib.use('Agg')
from ajtfb_collab.core import UnknownNameError
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.chapter import BOOK
from ajtfb_collab.interpret import item_parts, item_biases, item_factors, plot_item_biases, pca, most_similar, member_cosine


@pytest.fixture(scope='module')
def learn():
    r = synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=6)
    return BOOK.but(epochs=3).train(r, progress=False)


def test_pca_matches_the_svd():
    x = torch.randn(100, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    p = pca(x, 6)
    xc = x - x.mean(0)
    assert torch.allclose(p @ torch.linalg.svd(xc, full_matrices=False)[2], xc, atol=1e-8)  # all components: x itself
    v = p.var(0)
    assert (v[:-1] >= v[1:]).all()  # ordered by variance
    assert torch.allclose(p[:, :2], pca(x, 2))


def test_biases_and_factors_are_the_models(learn):
    items = list(learn.dls.classes['title'])
    b, f = item_biases(learn), item_factors(learn)
    assert list(b.index) == items[1:] and list(f.index) == items[1:]
    np.testing.assert_allclose(b.values, learn.model.i_bias.weight[1:, 0].detach().numpy())
    np.testing.assert_allclose(f.values, learn.model.i_weight.weight[1:].detach().numpy())
    factors, bias = item_parts(learn.model)
    assert factors.shape == (len(items), 50) and bias.shape == (len(items),)


def test_plot_item_biases_lowest_then_highest(learn):
    ax = plot_item_biases(learn, n=3)
    widths = [p.get_width() for p in ax.patches]
    b = item_biases(learn).sort_values()
    np.testing.assert_allclose(widths, list(b.values[:3]) + list(b.values[-3:]), rtol=1e-6)


def test_most_similar_is_cosine_and_symmetric(learn):
    items = list(learn.dls.classes['title'])
    top = most_similar(learn, 'Movie 3', n=len(items) - 2)
    f = learn.model.i_weight.weight.detach()
    q = items.index('Movie 3')
    cos = torch.nn.functional.cosine_similarity(f, f[q][None])
    np.testing.assert_allclose(top.set_index('title').similarity[items[5]], cos[5].item(), rtol=1e-5)
    a, s = top.iloc[0]
    back = most_similar(learn, a, n=len(items) - 2).set_index('title').similarity['Movie 3']
    assert back == pytest.approx(s, rel=1e-5)
    with pytest.raises(UnknownNameError, match="unknown title 'Movie 3 '; did you mean 'Movie 3'"): most_similar(learn, 'Movie 3 ')
    with pytest.raises(KeyError): most_similar(learn, 'zzz')  # still a KeyError for code that catches one


def test_member_cosine_averages_members():
    f = torch.randn(5, 8)
    two = member_cosine(f, 1, n_members=2)
    halves = [torch.nn.functional.cosine_similarity(f[:, h], f[1:2, h]) for h in (slice(0, 4), slice(4, 8))]
    assert torch.allclose(two, (halves[0] + halves[1]) / 2)
    assert torch.allclose(member_cosine(f, 1), torch.nn.functional.cosine_similarity(f, f[1:2]))


def test_most_similar_leaves_out_rare_items_when_asked(learn):
    r = synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=6)
    counted = most_similar(learn, 'Movie 3', n=39, ratings=r)
    assert (counted.n_ratings == counted.title.map(r.title.value_counts())).all()
    cut = int(counted.n_ratings.median())
    sturdy = most_similar(learn, 'Movie 3', n=39, min_ratings=cut, ratings=r)
    assert (sturdy.n_ratings >= cut).all() and len(sturdy) < len(counted)
    with pytest.raises(ValueError, match='min_ratings needs ratings'): most_similar(learn, 'Movie 3', min_ratings=5)
