"MovieLens 100k's files and the chapter's DataLoaders, on a tiny folder in its format (and the real one when present)."
import os, subprocess, sys
import pandas as pd, pytest
from ajtfb_collab.data import (load_ratings, load_users, load_movies, load_split, collab_dls, ml100k_path, genre_names,
                               ratings_summary, SPLITS)
from fastai.tabular.core import TabDataLoader, TabWeightedDL
from conftest import RATINGS, USERS, GENRES, needs_real_data


def test_load_ratings_columns_order_and_titles(tiny_ml100k):
    r = load_ratings(tiny_ml100k)
    assert list(r.columns) == ['user', 'movie', 'rating', 'timestamp', 'title']
    assert r[['user', 'movie', 'rating', 'timestamp']].values.tolist() == [list(o) for o in RATINGS]  # u.data's order
    assert r.set_index('movie').title.to_dict()[3] == 'Étoile (1989)'  # read as latin-1


def test_load_users_keeps_zip_as_text(tiny_ml100k):
    u = load_users(tiny_ml100k)
    assert list(u.columns) == ['user', 'age', 'gender', 'occupation', 'zip'] and len(u) == len(USERS)
    assert u.zip.tolist() == ['85711', '94043', '05201']


def test_load_movies_genres(tiny_ml100k):
    m = load_movies(tiny_ml100k)
    assert list(m.columns) == ['movie', 'title', 'release_date'] + GENRES
    assert genre_names(tiny_ml100k) == GENRES
    toy = m[m.title == 'Toy Story (1995)'].iloc[0]
    assert [toy[g] for g in ('Animation', "Children's", 'Comedy', 'Action')] == [1, 1, 1, 0]
    assert m.release_date.dt.year.tolist() == [1995, 1995, 1989, 1942]


def test_load_split(tiny_ml100k):
    for name in SPLITS:
        trn, tst = load_split(name, tiny_ml100k)
        assert list(trn.columns) == list(tst.columns) == ['user', 'movie', 'rating', 'timestamp', 'title']
        assert len(trn) + len(tst) == len(RATINGS)
    with pytest.raises(ValueError, match="unknown split 'u9'"): load_split('u9', tiny_ml100k)


def test_missing_file_is_named(tiny_ml100k):
    (tiny_ml100k/'u.item').unlink()
    with pytest.raises(FileNotFoundError, match='has no u.item'): load_ratings(tiny_ml100k)
    with pytest.raises(FileNotFoundError, match='has no u.data'): ml100k_path(tiny_ml100k.parent/'nothing')


def test_ratings_summary(tiny_ml100k):
    s = ratings_summary(load_ratings(tiny_ml100k))
    assert (s['ratings'], s['users'], s['items']) == (9, 3, 4)
    assert s['sparsity'] == pytest.approx(1 - 9/12) and s['histogram'] == {1: 1, 2: 1, 3: 2, 4: 3, 5: 2}


def test_collab_dls_seeded_split_and_sampling(tiny_ml100k):
    r = pd.concat([load_ratings(tiny_ml100k)] * 20, ignore_index=True)  # enough rows for a split
    a, b, c = collab_dls(r, bs=8), collab_dls(r, bs=8), collab_dls(r, bs=8, seed=7)
    assert a.valid_ds.items.index.equals(b.valid_ds.items.index)
    assert not a.valid_ds.items.index.equals(c.valid_ds.items.index)
    assert len(a.valid_ds) == int(0.2 * len(r))
    assert type(a.train) is TabDataLoader and type(collab_dls(r, with_replacement=True).train) is TabWeightedDL
    assert sorted(a.train.get_idxs()) == list(range(len(a.train_ds)))  # each row once an epoch
    assert list(a.classes['title'][1:]) == sorted(set(a.train_ds.items.title.map(dict(enumerate(a.classes['title'])))))


def test_download_failure_explains_and_leaves_nothing(tmp_path):
    # an empty FASTAI_HOME and an unreachable URL: the real untar_data path, failing fast
    code = ("from fastai.data.external import URLs; URLs.ML_100k = 'http://127.0.0.1:9/ml-100k.zip'\n"
            "from ajtfb_collab.data import load_ratings\nload_ratings()")
    res = subprocess.run([sys.executable, '-c', code], env={**os.environ, 'FASTAI_HOME': str(tmp_path)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith('ajtfb_collab.core.MissingFileError') and 'could not be downloaded' in last and 'FASTAI_HOME' in last
    assert not [p for p in tmp_path.rglob('*') if 'ml-100k' in p.name]  # no partial archive, lock or folder


@needs_real_data
def test_real_dataset_shapes():
    r = load_ratings()
    assert r.shape == (100_000, 5) and r.user.nunique() == 943 and r.movie.nunique() == 1682
    assert load_users().shape == (943, 5) and load_movies().shape == (1682, 22)
    assert [len(o) for o in load_split('u1')] == [80_000, 20_000]
