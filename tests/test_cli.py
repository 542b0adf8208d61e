"The `ajtfb-collab` command: each command run as a user runs it, its errors one line with status 2."
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
    assert res.returncode == 2 and "unknown command 'nope'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run('data', '--help')
    assert res.returncode == 0 and '--path' in res.stdout
    res = run('--help')
    assert res.returncode == 0 and all(f'  {c} ' in res.stdout for c in ('data', 'train', 'bench ladder', 'bench ddp', 'rank-eval'))


def test_options_have_dashes_only_and_one_default_each():
    "No option is spelled with an underscore, and an option that several commands take has the same default in each."
    from ajtfb_collab.cli import COMMANDS, parser
    defaults = {}
    for name, fn in COMMANDS.items():
        for a in parser(name, fn)._actions:
            assert not any('_' in o for o in a.option_strings), (name, a.option_strings)
            if a.option_strings and a.dest != 'help': defaults.setdefault(a.option_strings[0], set()).add(repr(a.default))
    assert {o: d for o, d in defaults.items() if len(d) > 1} == {}
    for mode in ('ladder', 'ddp', 'bayes'):
        res = run('bench', mode, '--help')
        assert res.returncode == 0 and f'ajtfb-collab bench {mode}' in res.stdout


def test_an_option_of_another_mode_is_one_line_status_2():
    res = run('bench', '--sizes', '1m')
    assert res.returncode == 2 and res.stdout == ''
    assert res.stderr.strip() == 'ajtfb-collab bench: error: --sizes is an option of `ajtfb-collab bench ladder`, not of `ajtfb-collab bench`'


def test_every_number_is_checked_before_anything_runs(tmp_path):
    for args, message in [(['train', '--out', str(tmp_path/'m'), '--bs', '0'], 'argument --bs: must be a whole number of at least 1, not 0'),
                          (['train', '--out', str(tmp_path/'m'), '--epochs', '-1'], 'argument --epochs: must be a whole number of at least 1, not -1'),
                          (['train', '--out', str(tmp_path/'m'), '--wd', '-0.1'], 'argument --wd: must be a number of at least 0, not -0.1'),
                          (['bench ladder', '--threads', '0'], 'argument --threads: must be a whole number of at least 1, not 0'),
                          (['rank-eval', '-k', 'ten'], "argument -k: must be a whole number of at least 1, not 'ten'")]:
        res = cli(*args)
        assert res.returncode == 2 and res.stderr.strip().endswith(message) and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path/'m').exists()


def test_reproduce_never_replaces_results_without_overwrite(tmp_path):
    (tmp_path/'results.csv').write_text('earlier results')
    res = cli('reproduce', '--out', str(tmp_path), '--models', '1')
    assert res.returncode == 2 and 'is not empty: pass --overwrite to replace its results' in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ['results.csv'] and (tmp_path/'results.csv').read_text() == 'earlier results'


def test_help_imports_no_heavy_module():
    code = ("import sys, ajtfb_collab.cli as c\n"
            "for name, fn in c.COMMANDS.items(): c.parser(name, fn).format_help()\n"
            "print(sorted(m for m in ('torch', 'fastai', 'pandas', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == '[]', res.stdout + res.stderr  # each command imports what it needs
    from ajtfb_collab.cli import recipe_names
    from ajtfb_collab import registry
    assert set(recipe_names()) == set(registry.recipes()) and recipe_names()[0] == 'fast'  # the names --help offers are the recipes train runs


def test_train_keeps_an_existing_model_and_refuses_divergence(trained):
    d, r, _ = trained
    model, cols = d/'model'/'model.pth', ['--user-col', 'uid', '--item-col', 'film', '--rating-col', 'stars']
    before = model.read_bytes()
    res = run('train', '--out', str(d/'model'), '--ratings', str(d/'ratings.csv'), *cols)
    assert res.returncode == 2 and 'exists: pass --overwrite to replace it' in res.stderr
    res = run('train', '--out', str(d/'model'), '--ratings', str(d/'ratings.csv'), *cols, '--lr', '1e30', '--epochs', '1', '--overwrite')
    assert res.returncode == 2 and 'training diverged' in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert model.read_bytes() == before


# train / recommend / similar on a small synthetic ratings file (trains in a few seconds)

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from ajtfb_collab.synthetic import synthetic_ratings
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
    assert float(line.split()[0].split('=')[1]) < 0.7 * r.stars.var()  # far better than predicting the mean
    assert '\r' not in res.stdout and '\u2588' not in res.stdout  # piped: fastai's line per epoch, no bars
    assert [l.split()[0] for l in res.stdout.splitlines()[1:7]] == ['epoch', '0', '1', '2', '3', '4']
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
    assert rows[0].split() == ['film', 'similarity'] and len(rows) == 4 and 'Movie 2 ' not in res.stdout  # the file's own column


def _bad_files(d):
    (d/'empty.csv').write_text('')
    (d/'malformed.csv').write_text('user,title,rating\n1,a,4\n2,b,5,9,9\n')
    (d/'nocol.csv').write_text('user,movie,rating\n1,a,4\n')
    (d/'text.csv').write_text('user,title,rating\n1,a,4\n2,b,five\n')
    (d/'notacsv.csv').write_bytes(b'\xff\xfe\x00\x01garbage\x00')
    return d


@pytest.mark.parametrize('args,message', [
    (['recommend', '{model}', '--user', '424242'], "unknown user '424242'"),
    (['similar', '{model}', 'No Such Film'], "unknown film 'No Such Film'"),
    (['similar', '{d}/no_model_here', 'Movie 1'], 'no model folder'),
    (['recommend', '{d}', '--user', '1'], 'has no model.pth'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/empty.csv'], 'empty.csv is empty'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/malformed.csv'], 'malformed.csv is not a readable CSV'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/nocol.csv'], "no column 'title'"),
    (['train', '--out', '{d}/new', '--ratings', '{d}/text.csv'], "first 'five' at row 1"),
    (['train', '--out', '{d}/new', '--ratings', '{d}/notacsv.csv'], 'notacsv.csv'),
    (['train', '--out', '{d}/new', '--ratings', '{d}/missing.csv'], 'no ratings file at'),
    (['train', '--out', '{d}/new', '--recipe', 'bayes', '--lr', '0.1'], '--lr do(es) not apply to --recipe bayes'),
    (['train', '--out', '{d}/new', '--recipe', 'sgd', '--bs', '64'], '--bs do(es) not apply to --recipe sgd'),
])
def test_bad_input_one_line_status_2_nothing_written(trained, tmp_path, args, message):
    d = _bad_files(tmp_path)
    before = sorted(p.name for p in d.iterdir())
    res = run(*[a.format(d=d, model=trained[0]/'model') for a in args])
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in res.stderr and message in lines[0], res.stderr
    assert sorted(p.name for p in d.iterdir()) == before  # nothing written


def _rows(out):
    "The data rows of a printed table, split on whitespace."
    return [l.split() for l in out.strip().splitlines()[1:]]


class Res:
    def __init__(self, returncode, stdout, stderr): self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(command, *args):
    "Run a command in this process (no interpreter start-up), as the console script would: status, stdout, stderr."
    import contextlib, io
    from ajtfb_collab.cli import run_command
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = run_command(command, list(args))
    return Res(rc, out.getvalue(), err.getvalue())


@pytest.mark.parametrize('recipe,kind', [('book', 'EmbeddingDotBias'), ('nn', 'EmbeddingNN'), ('rank', 'SoftmaxDot'),
                                         ('bayes', 'BayesDot'), ('sgd', 'FastDotBias')])
def test_train_each_recipe(trained, tmp_path, recipe, kind):
    d, r, _ = trained
    res = cli('train', '--out', str(tmp_path/recipe), '--ratings', str(d/'ratings.csv'), '--user-col', 'uid',
              '--item-col', 'film', '--rating-col', 'stars', '--recipe', recipe, '--epochs', '3')
    assert res.returncode == 0, res.stderr
    assert f'CollabModel({kind}: 80 uid x 40 film' in res.stdout and f'recipe={recipe} epochs=3' in res.stdout
    (tmp_path/'me.csv').write_text('film,stars\nMovie 1,5\nMovie 2,1\n')  # a new user
    for args in (['recommend', str(tmp_path/recipe), '--user', '4', '-n', '3'], ['similar', str(tmp_path/recipe), 'Movie 2', '-n', '2'],
                 ['recommend', str(tmp_path/recipe), '--answers', str(tmp_path/'me.csv'), '-n', '3']):
        res = cli(*args)
        assert res.returncode == 0 and len(_rows(res.stdout)) == int(args[-1]), res.stderr
    assert not {'Movie 1', 'Movie 2'} & {' '.join(row[:2]) for row in _rows(res.stdout)}  # the new user's own left out


@pytest.fixture(scope='module')
def latest(tmp_path_factory):
    "A ratings file in MovieLens' newer layout (userId,movieId,rating,timestamp; half stars; numbered movies), trained."
    from ajtfb_collab.synthetic import synthetic_ratings
    import pandas as pd
    d = tmp_path_factory.mktemp('latest')
    s = synthetic_ratings(n_users=90, n_items=45, n_ratings=3000, seed=8, titles=False)
    r = pd.DataFrame({'userId': s.user, 'movieId': s.movie * 10 + 200, 'rating': s.rating - 0.5 * (s.user % 2),
                      'timestamp': s.timestamp})
    r.to_csv(d/'ratings.csv', index=False)
    ids = sorted(r.movieId.unique())
    pd.DataFrame({'movieId': ids, 'title': [f'Film {i} (1999)' for i in ids], 'genres': 'Drama'}).to_csv(d/'movies.csv', index=False)
    res = cli('train', '--out', str(d/'model'), '--ratings', str(d/'ratings.csv'), '--user-col', 'userId',
              '--item-col', 'movieId', '--rating-col', 'rating')
    assert res.returncode == 0, res.stderr
    return d, r, res


def test_latest_layout_trains_the_fast_model(latest):
    d, r, res = latest
    assert 'CollabModel(FastDotBias: 90 userId x 45 movieId, 50 factors' in res.stdout and "ratings in 'rating'" in res.stdout
    assert float(res.stdout.split('valid_mse=')[1].split()[0]) < 0.8 * r.rating.var()
    assert 'recipe=fast epochs=7' in res.stdout


def test_latest_layout_similar_and_recommend_with_names(latest):
    d, r, _ = latest
    res = cli('similar', str(d/'model'), '260', '-n', '3')  # typed text, numeric ids
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:2] == ['movieId', 'similarity'] and len(_rows(res.stdout)) == 3
    assert '260' not in [row[0] for row in _rows(res.stdout)]
    named = cli('similar', str(d/'model'), '260', '-n', '3', '--items', str(d/'movies.csv'))
    assert named.stdout.split()[:3] == ['movieId', 'title', 'similarity']
    assert [row[0] for row in _rows(named.stdout)] == [row[0] for row in _rows(res.stdout)]
    assert all(row[1] == 'Film' and row[2] == row[0] for row in _rows(named.stdout))  # 'Film <id> (1999)'
    by_name = cli('similar', str(d/'model'), 'Film 260 (1999)', '-n', '3', '--items', str(d/'movies.csv'))
    assert by_name.stdout == named.stdout
    rec = cli('recommend', str(d/'model'), '--user', '7', '-n', '4', '--ratings', str(d/'ratings.csv'), '--items', str(d/'movies.csv'))
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.split()[:3] == ['movieId', 'title', 'prediction']
    ids = [int(row[0]) for row in _rows(rec.stdout)]
    assert len(ids) == 4 and not set(ids) & set(r[r.userId == 7].movieId)


def test_new_user_from_a_file_of_ratings(latest, tmp_path):
    d, r, _ = latest
    (tmp_path/'me.csv').write_text('movieId,rating\n260,5\n270,4.5\n300,1\n')
    res = cli('recommend', str(d/'model'), '--answers', str(tmp_path/'me.csv'), '-n', '5')
    assert res.returncode == 0, res.stderr
    ids = [int(row[0]) for row in _rows(res.stdout)]
    preds = [float(row[-1]) for row in _rows(res.stdout)]
    assert len(ids) == 5 and not {260, 270, 300} & set(ids) and preds == sorted(preds, reverse=True)
    (tmp_path/'other.csv').write_text('rating,movieId\n5,300\n1,270\n1,260\n')  # read by name, in any order
    other = cli('recommend', str(d/'model'), '--answers', str(tmp_path/'other.csv'), '-n', '5')
    assert other.returncode == 0 and other.stdout != res.stdout  # different answers, different recommendations


@pytest.mark.parametrize('content,message', [
    ('film,stars\n300,5\n', "no column 'movieId', 'rating' (columns: film, stars)"),  # never read by position
    ('movieId,rating\n300,5\n300,2\n', "answers rate '300' more than once"),
    ('movieId,rating\n300,500\n', "rating 500 for '300' is not on the model's scale, 0.5 to 5 in steps of 0.5"),  # the training ratings' scale
    ('movieId,rating\n300,5.5\n', "rating 5.5 for '300' is not on the model's scale"),  # within the y_range, above the highest rating
])
def test_answers_by_name_once_each_on_the_scale(latest, tmp_path, content, message):
    d, r, _ = latest
    (tmp_path/'me.csv').write_text(content)
    res = cli('recommend', str(d/'model'), '--answers', str(tmp_path/'me.csv'))
    assert res.returncode == 2 and res.stdout == '' and message in res.stderr, res.stderr


@pytest.mark.parametrize('n', ['0', '-5'])
def test_fewer_than_one_item_is_an_error(latest, n):
    d, r, _ = latest
    for args in (['recommend', str(d/'model'), '--user', '7'], ['similar', str(d/'model'), '260']):
        res = cli(*args, '-n', n)
        assert res.returncode == 2 and f'argument -n: must be a whole number of at least 1, not {n}' in res.stderr, res.stderr


@pytest.mark.parametrize('content,message', [
    ('user,title,rating\n1,a,4\n', '1 rating(s): a training and a validation set need at least 5'),
    ('user,title,rating\n' + ''.join(f'{u},m{u % 7},{1 + u % 5}\n' for u in range(60)) + '60,m1,1e9\n',
     'far outside the rest, first 1000000000.0 at row 60'),
])
def test_too_few_or_far_out_ratings_one_line_nothing_written(tmp_path, content, message):
    (tmp_path/'r.csv').write_text(content)
    res = cli('train', '--out', str(tmp_path/'m'), '--ratings', str(tmp_path/'r.csv'))
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path/'m').exists()


def test_internal_error_shows_its_traceback(tmp_path, tiny_ml100k):
    "A bug that raises `KeyError` is not disguised as a user's mistake: traceback, status 1."
    (tmp_path/'broken.py').write_text(
        "import sys, ajtfb_collab.cli as cli, ajtfb_collab.data as data\n"
        "data.ratings_summary = lambda *a, **k: {}['histogram']  # an injected internal error\n"
        f"sys.argv = ['ajtfb-collab', 'data', '--path', {str(tiny_ml100k)!r}]\nsys.exit(cli.main())\n")
    res = subprocess.run([sys.executable, str(tmp_path/'broken.py')], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and 'Traceback' in res.stderr and "KeyError: 'histogram'" in res.stderr
    assert 'ajtfb-collab data: error' not in res.stderr


def test_evaluate_and_bench_the_bayes_recipe_on_the_tiny_folder(tiny_ml100k):
    import re
    res = cli('evaluate', '--recipe', 'bayes', '--folds', 'u1', '--path', str(tiny_ml100k), '--myfm')
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r'mean_rmse=\d\.\d{4} u1_rmse=\d\.\d{4}', res.stdout.strip().splitlines()[-1])
    assert 'ours (bayes, Gibbs sampling)' in res.stdout and 'myFM, same side information' in res.stdout
    res = cli('bench bayes', '--runs', '1', '--path', str(tiny_ml100k))
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r'ours_mse=\S+ peer_mse=\S+ ours_s=\S+ peer_s=\S+ time_ratio=\S+', res.stdout.strip().splitlines()[-1])


def test_bench_ladder_prints_a_line_per_point(tmp_path):
    from ajtfb_collab.synthetic import ladder_ratings
    import pandas as pd
    res = cli('bench ladder', '--sizes', '100k', '--recipes', 'fast,sgd,bayes', '--csv', str(tmp_path/'ladder.csv'))
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if l.startswith('size=100k recipe=')]
    assert [l.split()[1] for l in lines] == ['recipe=fast', 'recipe=sgd', 'recipe=bayes']
    for l in lines:
        kv = dict(p.split('=') for p in l.split())
        assert float(kv['seconds']) > 0 and float(kv['ns_per_rating']) > 0 and float(kv['noise_floor_mse']) > 0.5
        assert float(kv['valid_mse']) < ladder_ratings('100k').rating.var()  # better than predicting the mean
    assert pd.read_csv(tmp_path/'ladder.csv').recipe.tolist() == ['fast', 'sgd', 'bayes']  # the table, for the bench notebook
    ratios = [l for l in res.stdout.splitlines() if l.startswith(('size=100k bayes_over', 'cost_per_rating=', 'size=100k peak_rss_gb='))]
    assert len(ratios) == 1 and ratios[0].startswith('size=100k peak_rss_gb=')  # one size: no growth to print, and no myFM to compare
    assert cli('bench ladder', '--sizes', '5m').returncode == 2


def test_rank_eval_on_a_ratings_file(tmp_path):
    from ajtfb_collab.synthetic import ladder_ratings
    df = ladder_ratings((12_000, 200, 300), seed=5).drop(columns='expected')
    df.rename(columns=dict(user='userId', movie='movieId')).to_csv(tmp_path/'r.csv', index=False)
    res = cli('rank-eval', '--ratings', str(tmp_path/'r.csv'), '--user-col', 'userId', '--item-col', 'movieId', '--no-peers')
    assert res.returncode == 0, res.stderr
    assert 'read 12,000 ratings of 200 users and 300 items' in res.stdout
    assert 'rating model (FAST)' in res.stdout and 'rating model (BOOK)' not in res.stdout
    kv = dict(p.split('=') for p in res.stdout.strip().splitlines()[-1].split())
    assert 0 < float(kv['ndcg10']) <= 1 and 0 < float(kv['pop_ndcg10']) <= 1
    assert cli('rank-eval', '--ratings', str(tmp_path/'r.csv')).returncode == 2  # no column 'user'
    res = cli('rank-eval', '--item-col', 'movieId')  # MovieLens 100k: Recommenders' protocol, by movie id
    assert res.returncode == 2 and '--item-col applies to --ratings' in res.stderr


@pytest.mark.parametrize('recipe,column', [('rank', 'score'), ('bayes', 'prediction')])
def test_a_saved_model_of_any_kind_is_read_by_a_fresh_process(trained, recipe, column):
    "`recommend` imports only what it needs; a model whose kind another module registers (rank, bayes) still loads."
    d, r, _ = trained
    cols = ['--user-col', 'uid', '--item-col', 'film', '--rating-col', 'stars']
    res = run('train', '--out', str(d/recipe), '--ratings', str(d/'ratings.csv'), *cols, '--recipe', recipe, '--epochs', '20' if recipe == 'bayes' else '1')
    assert res.returncode == 0, res.stderr
    res = run('recommend', str(d/recipe), '--user', '4', '-n', '3')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].split() == ['film', column] and len(res.stdout.splitlines()) == 4


@pytest.fixture(scope='module')
def release_1m(tmp_path_factory):
    "A small folder in MovieLens 1M's own layout (ratings.dat with `::`, latin-1 movies.dat, users.dat)."
    from ajtfb_collab.synthetic import ladder_ratings
    from ajtfb_collab.datasets import write_movielens
    import pandas as pd
    r = ladder_ratings((6_000, 120, 150), seed=4).drop(columns='expected')
    movies = pd.DataFrame({'movie': sorted(r.movie.unique())})
    movies = movies.assign(title=[f'Film {m} (19{m % 100:02d})' for m in movies.movie], genres='Drama')
    movies.loc[0, 'title'] = 'Cérémonie, La (1995)'
    return write_movielens('ml-1m', tmp_path_factory.mktemp('ml-1m')/'ml-1m', r, movies), movies.loc[0]


def test_dataset_by_name_trains_recommends_and_evaluates(release_1m, tmp_path):
    import re
    folder, first = release_1m
    res = cli('train', '--dataset', 'ml-1m', '--path', str(folder), '--out', str(tmp_path/'m'), '--epochs', '2')
    assert res.returncode == 0, res.stderr
    assert 'MovieLens 1M' in res.stdout and float(re.search(r'valid_mse=(\S+)', res.stdout)[1]) < 1.2
    res = cli('similar', str(tmp_path/'m'), first.title, '-n', '3', '--dataset', 'ml-1m', '--path', str(folder))
    assert res.returncode == 0, res.stderr
    assert len(re.findall(r'Film \d+ \(19\d\d\)', res.stdout)) == 3  # names from movies.dat, not ids
    res = cli('evaluate', '--dataset', 'ml-1m', '--path', str(folder), '--members', '1')
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r'dataset=ml-1m recipe=fast rmse=\d\.\d{4} published_best=0\.8140 seconds=\S+', last)
    assert 'GLocal-K' in res.stdout and 'measured here' in res.stdout
    res = cli('train', '--dataset', 'ml-25m', '--path', str(folder), '--out', str(tmp_path/'m25'))  # no ratings.csv there
    assert res.returncode == 2 and 'MovieLens 25M folder' in res.stderr and 'has no ratings.csv' in res.stderr and '\n' not in res.stderr.strip()
    assert not (tmp_path/'m25').exists()


@pytest.mark.parametrize('sigint_ignored', [False, True])
def test_serve_prints_its_address_and_stops_on_ctrl_c(trained, sigint_ignored):
    "The command a person runs: the address on the first line, the page answers, Ctrl-C (even twice) stops it cleanly; also when started with SIGINT ignored (a worker process's children inherit that)."
    import signal, socket, time, urllib.request
    d, _, _ = trained
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]  # a free port
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    p = subprocess.Popen([EXE, 'serve', str(d/'model'), '--port', str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=ignore)
    try:
        first = p.stdout.readline().strip()
        assert first == f"serving {d/'model'} at http://127.0.0.1:{port}/ (Ctrl-C stops)", (first, p.stderr.read() if p.poll() is not None else '')
        assert b'<html' in urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=30).read()
        p.send_signal(signal.SIGINT); time.sleep(0.2); p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and out.strip() == 'stopped' and 'Traceback' not in err, err[-500:]
    finally: p.kill()


@pytest.mark.parametrize('recipe', ['sgd', 'bayes'])
def test_train_threads_runs_the_compiled_passes_on_that_many_threads(trained, recipe, monkeypatch, capsys):
    "`train --threads 2`: the compiled passes run on two OS threads, the summary line says so, and the command leaves torch's count as it found it."
    import threading, torch
    from ajtfb_collab import bayes, kernels
    from ajtfb_collab.cli import run_command
    d, r, _ = trained
    seen, real = set(), kernels.in_threads
    def spy(jobs):
        def mark(j): return lambda: (seen.add(threading.get_ident()), j())[1]
        return real([mark(j) for j in jobs])
    for m in (kernels, bayes): monkeypatch.setattr(m, 'in_threads', spy)  # sgd's strata call it in kernels; the sampler, in bayes
    before = torch.get_num_threads()
    rc = run_command('train', ['--out', str(d/f'threads-{recipe}'), '--ratings', str(d/'ratings.csv'), '--user-col', 'uid', '--item-col', 'film',
                               '--rating-col', 'stars', '--recipe', recipe, '--epochs', '12', '--threads', '2'])
    out = capsys.readouterr().out
    assert rc == 0 and ' threads=2 ' in out.strip().splitlines()[-1], out[-500:]
    assert len(seen) == 2 and torch.get_num_threads() == before
