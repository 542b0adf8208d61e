import os, shutil, subprocess, sys
import pytest

EXE = shutil.which('ajtfb-collab') or os.path.join(os.path.dirname(sys.executable), 'ajtfb-collab')


def run(*args, **kw):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, **kw)


def test_data_command_prints_summary(tiny_ml100k):
    res = run('data', '--path', str(tiny_ml100k))
    assert res.returncode == 0, res.stderr
    assert f'MovieLens 100k from {tiny_ml100k}' in res.stdout and 'ratings: 9' in res.stdout
    assert 'users: 3' in res.stdout and 'sparsity: 25.00%' in res.stdout


def test_data_command_missing_folder_is_one_line_status_2(tmp_path):
    res = run('data', '--path', str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f'ajtfb-collab data: error: MovieLens 100k folder {tmp_path} has no '
                                               'u.data: point path (--path on the command line) at a folder '
                                               'unpacked from ml-100k.zip']
    assert 'Traceback' not in res.stderr and res.stdout == ''


def test_unknown_command_and_help():
    res = run('nope')
    assert res.returncode == 2 and "invalid choice: 'nope'" in res.stderr
    res = run('data', '--help')
    assert res.returncode == 0 and '--path' in res.stdout


# train / recommend / similar on a small synthetic ratings file (trains in a few seconds)

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from ajtfb_collab.data import synthetic_ratings
    d = tmp_path_factory.mktemp('cli')
    r = synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=3).rename(
        columns={'user': 'uid', 'title': 'film', 'rating': 'stars'})
    r.to_csv(d/'ratings.csv', index=False)
    res = run('train', '--out', str(d/'model'), '--ratings', str(d/'ratings.csv'), '--user-col', 'uid',
              '--item-col', 'film', '--rating-col', 'stars', '--epochs', '5')
    assert res.returncode == 0, res.stderr
    return d, r, res


def test_train_prints_mse_and_saves(trained):
    d, r, res = trained
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith('valid_mse=') and f"saved={d/'model'/'model.pth'}" in line
    assert float(line.split()[0].split('=')[1]) < r.stars.var()  # better than predicting the mean
    from ajtfb_collab.inference import load_model
    assert list(load_model(d/'model'/'model.pth').classes) == ['uid', 'film']


def test_recommend_leaves_out_rated(trained):
    d, r, _ = trained
    res = run('recommend', str(d/'model'), '--user', '4', '-n', '4', '--ratings', str(d/'ratings.csv'))
    assert res.returncode == 0, res.stderr
    rows = res.stdout.strip().splitlines()[1:]
    titles = [l.rsplit(None, 1)[0].strip() for l in rows]
    preds = [float(l.rsplit(None, 1)[1]) for l in rows]
    assert len(titles) == 4 and preds == sorted(preds, reverse=True)
    assert not set(titles) & set(r[r.uid == 4].film)


def test_similar(trained):
    d, _, _ = trained
    res = run('similar', str(d/'model'), 'Movie 2', '-n', '3')
    assert res.returncode == 0, res.stderr
    rows = res.stdout.strip().splitlines()
    assert rows[0].split() == ['title', 'similarity'] and len(rows) == 4 and 'Movie 2 ' not in res.stdout


def _bad_files(d):
    (d/'empty.csv').write_text('')
    (d/'malformed.csv').write_text('user,title,rating\n1,a,4\n2,b,5,9,9\n')
    (d/'nocol.csv').write_text('user,movie,rating\n1,a,4\n')
    (d/'text.csv').write_text('user,title,rating\n1,a,4\n2,b,five\n')
    (d/'notacsv.csv').write_bytes(b'\xff\xfe\x00\x01garbage\x00')
    return d


@pytest.mark.parametrize('args,message', [
    (['recommend', '{model}', '--user', '424242'], "unknown user '424242'"),
    (['similar', '{model}', 'No Such Film'], "unknown title 'No Such Film'"),
    (['similar', '{d}/no_model_here', 'Movie 1'], 'no model folder'),
    (['recommend', '{d}', '--user', '1'], 'has no model.pth'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/empty.csv'], 'empty.csv is empty'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/malformed.csv'], 'malformed.csv is not a readable CSV'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/nocol.csv'], "no column 'title'"),
    (['train', '--out', '{d}/new', '--ratings', '{d}/text.csv'], "first 'five' at row 1"),
    (['train', '--out', '{d}/new', '--ratings', '{d}/notacsv.csv'], 'notacsv.csv'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/missing.csv'], 'no ratings file at'),
])
def test_bad_input_one_line_status_2_nothing_written(trained, tmp_path, args, message):
    d = _bad_files(tmp_path)
    before = sorted(p.name for p in d.iterdir())
    res = run(*[a.format(d=d, model=trained[0]/'model') for a in args])
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in res.stderr and message in lines[0], res.stderr
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written
