"Synthetic ratings: a small low-rank table, and the MovieLens ladder's shapes and tails."
import pandas as pd, pytest
from ajtfb_collab.core import BadValueError
from ajtfb_collab.synthetic import synthetic_ratings, ladder_ratings, noise_floor, HALF_STARS, LADDER


def test_synthetic_ratings_are_seeded_distinct_stars():
    syn = synthetic_ratings(n_users=50, n_items=20, n_ratings=600, seed=3)
    assert list(syn.columns) == ['user', 'movie', 'rating', 'timestamp', 'title'] and len(syn) == 600
    assert not syn.duplicated(['user', 'movie']).any() and syn.rating.between(1, 5).all()
    pd.testing.assert_frame_equal(syn, synthetic_ratings(n_users=50, n_items=20, n_ratings=600, seed=3))
    pd.testing.assert_frame_equal(synthetic_ratings(n_users=50, n_items=20, n_ratings=600, seed=3, titles=False), syn.drop(columns='title'))


def test_ladder_has_the_shape_and_tails_asked_for():
    df = ladder_ratings((40_000, 400, 700), seed=2)
    assert (len(df), df.user.nunique(), df.movie.nunique()) == (40_000, 400, 700)
    assert not df.duplicated(['user', 'movie']).any()
    per_user, per_item = df.user.value_counts(), df.movie.value_counts()
    assert per_user.min() == 20 and per_user.max() > 5 * per_user.median()
    assert per_item.iloc[:7].sum() > 0.04 * len(df)  # the top 1% of movies
    assert set(df.rating.unique()) <= set(HALF_STARS) and df.timestamp.between(946_684_800, 1_800_000_000).all()
    assert 0.5 < noise_floor(df) < 0.7 < df.rating.var()
    assert LADDER['32m'] == (32_000_204, 200_948, 87_585)


def test_ladder_refuses_a_shape_it_cannot_draw():
    with pytest.raises(BadValueError, match='need 200 ratings'): ladder_ratings((100, 10, 50))
