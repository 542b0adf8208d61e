"Fixtures: a tiny MovieLens-100k-format folder, so the data API is tested without the real dataset."
import os
from pathlib import Path
import pytest
import ajtfb_collab.core  # noqa: F401 (first: it silences two known library warnings, as every module does)

GENRES = ['unknown', 'Action', 'Adventure', 'Animation', "Children's", 'Comedy', 'Crime', 'Documentary', 'Drama',
          'Fantasy', 'Film-Noir', 'Horror', 'Musical', 'Mystery', 'Romance', 'Sci-Fi', 'Thriller', 'War', 'Western']
MOVIES = [(1, 'Toy Story (1995)', '01-Jan-1995', [3, 4, 5]), (2, 'GoldenEye (1995)', '01-Jan-1995', [1, 2, 16]),
          (3, 'Étoile (1989)', '01-Jan-1989', [11]),  # latin-1 title, as u.item has some
          (4, 'Casablanca (1942)', '01-Jan-1942', [8, 14, 17])]
USERS = [(1, 24, 'M', 'technician', '85711'), (2, 53, 'F', 'other', '94043'), (3, 23, 'M', 'writer', '05201')]
# (user, movie, rating, timestamp); u1 holds out the last rating of each user
RATINGS = [(1, 1, 5, 874965758), (1, 2, 3, 876893171), (1, 4, 4, 878542960), (2, 1, 4, 888550871),
           (2, 3, 2, 888551140), (2, 4, 5, 888552084), (3, 2, 1, 889237455), (3, 3, 3, 889237269), (3, 1, 4, 889236926)]


def _write(path: Path, name: str, rows, sep='\t', encoding='utf-8'):
    (path/name).write_text(''.join(sep.join(map(str, r)) + '\n' for r in rows), encoding=encoding)


def write_tiny_ml100k(path: Path) -> Path:
    "Write a folder in the ml-100k format (tab-separated u.data, `|`-separated latin-1 u.item) and return it."
    path.mkdir(parents=True, exist_ok=True)
    _write(path, 'u.data', RATINGS)
    _write(path, 'u.item', [(m, t, d, '', f'http://imdb/{m}', *[int(i in g) for i in range(19)])
                            for m, t, d, g in MOVIES], sep='|', encoding='latin-1')
    _write(path, 'u.user', USERS, sep='|')
    _write(path, 'u.genre', [(g, i) for i, g in enumerate(GENRES)] + [()], sep='|')
    for split in ('u1', 'u2', 'u3', 'u4', 'u5', 'ua', 'ub'):
        test = [r for i, r in enumerate(RATINGS) if i % 3 == 2]
        _write(path, f'{split}.base', [r for r in RATINGS if r not in test])
        _write(path, f'{split}.test', test)
    return path


@pytest.fixture
def tiny_ml100k(tmp_path):
    return write_tiny_ml100k(tmp_path/'ml-100k')


def real_ml100k():
    "The real dataset's folder where fastai would find it, or None (never triggers a download)."
    from fastai.data.external import URLs
    p = URLs.path(URLs.ML_100k, c_key='data').with_suffix('')
    return p if (p/'u.data').exists() else None


needs_real_data = pytest.mark.skipif(
    real_ml100k() is None,
    reason="MovieLens 100k not found under $FASTAI_HOME/data/ml-100k (README: 'Working offline')")
