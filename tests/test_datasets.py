"Ratings of your own: reading a ratings file, and checking a ratings table."
import numpy as np, pandas as pd, pytest
from ajtfb_collab.core import BadFileError, MissingFileError
from ajtfb_collab.datasets import validate_ratings, read_ratings_csv, rating_bounds


@pytest.mark.parametrize('df,match', [
    (pd.DataFrame({'user': [1], 'rating': [3]}), "no column 'title'"),
    (pd.DataFrame({'user': [], 'title': [], 'rating': []}), 'empty'),
    (pd.DataFrame({'user': [1, 2], 'title': ['a', 'b'], 'rating': [3, 'x']}), "first 'x' at row 1"),
    (pd.DataFrame({'user': [1, 2], 'title': ['a', 'b'], 'rating': [3, np.nan]}), 'not finite'),
    (pd.DataFrame({'user': [1, 2], 'title': ['a', 'b'], 'rating': [-np.inf, 3]}), 'not finite'),
    (pd.DataFrame({'user': [1, 2], 'title': ['a', None], 'rating': [3, 4]}), "'title' has 1 missing"),
])
def test_validate_ratings_names_the_problem(df, match):
    with pytest.raises(ValueError, match=match): validate_ratings(df)


def test_validate_ratings_other_column_names():
    df = pd.DataFrame({'u': [1], 'i': ['a'], 'stars': ['4.5']})
    assert validate_ratings(df, 'u', 'i', 'stars') is df
    with pytest.raises(ValueError, match="no column 'title'"): validate_ratings(df, 'u')


def test_a_rating_far_outside_the_rest_is_refused():
    stars = pd.DataFrame({'user': range(40), 'title': ['a', 'b'] * 20, 'rating': [1, 2, 3, 4, 5] * 8})
    assert rating_bounds(stars.rating) == (-37, 43)  # median 3, scale 4
    with pytest.raises(ValueError, match='far outside the rest, first 1000000000.0 at row 0'):
        validate_ratings(stars.assign(rating=[1e9] + [1, 2, 3, 4, 5] * 7 + [4, 4, 4, 4]))
    assert validate_ratings(stars.assign(rating=stars.rating / 2)) is not None  # half stars


def test_read_ratings_csv_names_the_file(tmp_path):
    ok = pd.DataFrame({'user': [1, 2], 'title': ['a', 'b'], 'rating': [4.5, 3]})
    ok.to_csv(tmp_path/'ok.csv', index=False)
    pd.testing.assert_frame_equal(read_ratings_csv(tmp_path/'ok.csv'), ok)
    (tmp_path/'empty.csv').write_text('')
    (tmp_path/'bad.csv').write_text('user,title,rating\n1,a,4\n2,b,5,7,8\n')
    with pytest.raises(BadFileError, match='empty.csv is empty'): read_ratings_csv(tmp_path/'empty.csv')
    with pytest.raises(BadFileError, match='bad.csv is not a readable CSV'): read_ratings_csv(tmp_path/'bad.csv')
    with pytest.raises(MissingFileError, match='no items file at'): read_ratings_csv(tmp_path/'nope.csv', what='items')
