"Ratings of your own: reading a ratings file, and checking a ratings table."
import numpy as np, pandas as pd, pytest
from ajtfb_collab.core import BadFileError, MissingFileError, UnknownNameError
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


# MovieLens releases by name: small folders written by hand in each release's own layout, read back row for row.
import ajtfb_collab.datasets as datasets
from ajtfb_collab.datasets import MOVIELENS, movielens, movielens_path, read_ratings_file, smallest_int, write_movielens

DAT_RATINGS = [(1, 1193, 5, 978300760), (1, 661, 3, 978302109), (2, 3408, 4, 978298413), (6040, 1, 1, 956703977)]
HALF_RATINGS = [(1, 122, 4.5, 838985046), (1, 185, 0.5, 838983525), (71567, 2338, 3.5, 912580553)]


@pytest.fixture
def fastai_home(tmp_path, monkeypatch):
    "fastai's `FASTAI_HOME` at a folder of the test's own (fastai caches its config: cleared before and after)."
    from fastai.data.external import fastai_cfg
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'home'))
    fastai_cfg.cache_clear()
    yield tmp_path/'home'
    fastai_cfg.cache_clear()


def _dat(folder, name, rows, encoding='utf-8'):
    folder.mkdir(parents=True, exist_ok=True)
    (folder/name).write_bytes(''.join('::'.join(map(str, r)) + '\n' for r in rows).encode(encoding))


def _check_ratings(ml, rows):
    r = ml.ratings
    back = [tuple(x) for x in r[['user', 'movie', 'rating', 'timestamp']].itertuples(index=False)]
    assert back == [tuple(x) for x in rows]  # every row back, in order, values exact
    assert r.user.dtype.itemsize <= 4 and r.movie.dtype.itemsize <= 4 and r.rating.dtype == np.float32


def test_ml_1m_layout_latin1_titles_and_users(tmp_path):
    folder = tmp_path/'ml-1m'
    _dat(folder, 'ratings.dat', DAT_RATINGS)
    _dat(folder, 'movies.dat', [(1, 'Toy Story (1995)', "Animation|Children's|Comedy"), (661, 'James and the Giant Peach (1996)', 'Animation'),
                                (1193, "One Flew Over the Cuckoo's Nest (1975)", 'Drama'), (3408, 'Erin Brockovich (2000)', 'Drama'),
                                (3883, 'La Cérémonie (1995)', 'Drama')], encoding='latin-1')  # as GroupLens wrote 1M
    _dat(folder, 'users.dat', [(1, 'F', 1, 10, '48067'), (2, 'M', 56, 16, '70072'), (6040, 'M', 25, 6, '11106')])
    ml = movielens('ml-1m', folder)
    _check_ratings(ml, DAT_RATINGS)
    assert ml.movies.title.iloc[-1] == 'La Cérémonie (1995)'  # latin-1 decoded
    assert ml.movies.genres.iloc[0] == "Animation|Children's|Comedy"
    assert ml.users.to_dict('records')[0] == dict(user=1, age=1, gender='F', occupation=10, zip='48067')
    assert ml.names()[1193] == "One Flew Over the Cuckoo's Nest (1975)"


def test_ml_10m_folder_name_and_half_stars(fastai_home):
    folder = fastai_home/'data'/'ml-10M100K'  # what ml-10m.zip unpacks to
    _dat(folder, 'ratings.dat', HALF_RATINGS)
    _dat(folder, 'movies.dat', [(122, 'Boomerang (1992)', 'Comedy|Romance'), (185, 'Net, The (1995)', 'Action|Crime|Thriller'),
                                (2338, 'I Still Know What You Did Last Summer (1998)', 'Horror|Mystery|Thriller')])
    assert movielens_path('ml-10m') == folder
    ml = movielens('ml-10m')
    _check_ratings(ml, HALF_RATINGS)
    assert ml.users is None and ml.movies.title.iloc[1] == 'Net, The (1995)'


@pytest.mark.parametrize('name', ['ml-20m', 'ml-25m', 'ml-32m', 'ml-latest-small', 'ml-latest'])
def test_csv_layouts_quoted_titles_and_half_stars(tmp_path, name):
    folder = tmp_path/name
    folder.mkdir()
    (folder/'ratings.csv').write_text('userId,movieId,rating,timestamp\n' + ''.join(f'{u},{m},{r},{t}\n' for u, m, r, t in HALF_RATINGS))
    (folder/'movies.csv').write_text('movieId,title,genres\n122,Boomerang (1992),Comedy|Romance\n'
                                     '185,"Net, The (1995)",Action|Crime|Thriller\n2338,"Amélie (2001)",Comedy|Romance\n')
    ml = movielens(name, folder)
    _check_ratings(ml, HALF_RATINGS)
    assert list(ml.movies.title) == ['Boomerang (1992)', 'Net, The (1995)', 'Amélie (2001)'] and ml.users is None


def test_ml_100k_layout_by_name(tiny_ml100k):
    from conftest import RATINGS, MOVIES
    ml = movielens('ml-100k', tiny_ml100k)
    _check_ratings(ml, RATINGS)
    assert ml.movies.title.tolist() == [t for _, t, _, _ in MOVIES]  # 'Étoile (1989)' from latin-1
    assert ml.movies.genres.iloc[0] == "Animation|Children's|Comedy" and len(ml.users) == 3


@pytest.mark.parametrize('name', sorted(MOVIELENS))
def test_write_movielens_round_trips_every_layout(tmp_path, name):
    ratings = pd.DataFrame({'user': [3, 1, 2, 1], 'movie': [10, 20, 10, 30], 'rating': [4.5, 1.0, 3.0, 5.0],
                            'timestamp': [9, 8, 7, 6]})
    movies = pd.DataFrame({'movie': [10, 20, 30], 'title': ['Étoile (1989)', 'Net, The (1995)', 'Up (2009)'],
                           'genres': ['Drama', 'Action|Thriller', 'Animation']})
    users = pd.DataFrame({'user': [1, 2, 3], 'age': [1, 18, 56], 'gender': ['F', 'M', 'F'], 'occupation': [10, 4, 0],
                          'zip': ['48067', '55117', '02460']})
    if name == 'ml-100k': ratings = ratings.assign(rating=ratings.rating.round().clip(1, 5))  # whole stars only
    ml = movielens(name, write_movielens(name, tmp_path/name, ratings, movies, users))
    _check_ratings(ml, ratings.itertuples(index=False))
    assert ml.movies.title.tolist() == movies.title.tolist()
    if MOVIELENS[name].users: assert ml.users.user.tolist() == [1, 2, 3] and ml.users.zip.tolist() == users.zip.tolist()
    else: assert ml.users is None


def test_missing_release_is_one_line_naming_the_folder(tmp_path, fastai_home, monkeypatch):
    def offline(url, *args, **kwargs): raise OSError('no network')
    monkeypatch.setattr(datasets, 'untar_data', offline)
    with pytest.raises(MissingFileError) as e: movielens('ml-1m')
    msg = str(e.value)
    assert '\n' not in msg and str(fastai_home/'data'/'ml-1m') in msg and 'ml-1m.zip' in msg
    assert not any(fastai_home.rglob('*.zip'))  # no half-downloaded archive left
    with pytest.raises(MissingFileError, match='has no ratings.dat'): movielens('ml-1m', tmp_path)
    with pytest.raises(UnknownNameError, match="unknown MovieLens release 'ml-2m'"): movielens('ml-2m')


def test_reading_is_chunked_and_compact(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, 'CHUNK', 64)  # a few lines a chunk: the chunk seams are exercised
    rows = [(u, 100 + u % 7, (u % 10 + 1) / 2, 10**9 + u) for u in range(1, 500)]
    (tmp_path/'ratings.dat').write_text(''.join('::'.join(map(str, r)) + '\n' for r in rows))
    r = read_ratings_file(tmp_path/'ratings.dat', '::')
    assert [tuple(x) for x in r.itertuples(index=False)] == rows
    assert r.user.dtype == np.int16 and r.movie.dtype == np.int8 and r.timestamp.dtype == np.int32  # the smallest that hold them
    assert smallest_int(np.array([0, 70000])).dtype.itemsize == 4 and smallest_int(np.array([1, 2])).dtype.itemsize == 1
