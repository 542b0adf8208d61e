"Interactions (clicks, plays) from file to page: reading them, training on them, every command on a model of them, and bad input."
import os, shutil, subprocess, sys
import numpy as np, pandas as pd, pytest, torch
from ajtfb_collab.core import BadValueError
from ajtfb_collab.clicks import (Interactions, to_interactions, synthetic_plays, true_scores, repeats, merge_members, train_clicks,
                                 clicks_table, truth_recommender, ALPHA, MEMBERS, CLICKS_OURS)
from ajtfb_collab.rank import RANK, SoftmaxDot, rank_line
from ajtfb_collab.inference import save_model, load_model, recommend, rare_threshold, rarely_rated
from ajtfb_collab.coldstart import check_answers, recommend_new_user
from ajtfb_collab.app import Page, make_app, serve, stop, is_clicks

EXE = shutil.which('ajtfb-collab') or os.path.join(os.path.dirname(sys.executable), 'ajtfb-collab')


def run(*args):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def plays():
    return synthetic_plays(n_users=250, n_items=150, seed=3)


@pytest.fixture(scope='module')
def files(plays, tmp_path_factory):
    d = tmp_path_factory.mktemp('plays')
    plays.to_csv(d/'plays.csv', index=False)
    plays.to_csv(d/'plays.tsv', sep='\t', index=False)
    pd.DataFrame({'artist': range(1, 151), 'name': [f'Artist {i}' for i in range(1, 151)]}).to_csv(d/'artists.csv', index=False)
    pd.DataFrame({'artist': [2, 4, 6]}).to_csv(d/'liked.csv', index=False)
    return d


@pytest.fixture(scope='module')
def model_dir(files):
    res = run('train', '--recipe', 'rank', '--ratings', str(files/'plays.csv'), '--user-col', 'user', '--item-col', 'artist',
              '--weight-col', 'plays', '--out', str(files/'m'), '--epochs', '3')
    assert res.returncode == 0, res.stderr
    return files/'m', res.stdout


def test_repeated_rows_add_up_and_bad_weights_are_one_error():
    t = pd.DataFrame({'u': [1, 1, 2, 2], 'i': ['a', 'a', 'b', 'c'], 'w': [2, 3, 0, 1.5]})
    inter = to_interactions(t, 'u', 'i', 'w')
    assert inter.table.values.tolist() == [[1, 'a', 5.0], [2, 'c', 1.5]] and len(inter) == 2
    for bad, msg in [(t.assign(w=[1, np.nan, 1, 1]), "not numbers of at least 0"), (t.assign(w=[1, -1, 1, 1]), 'first -1 at row 1'),
                     (t.drop(columns='u'), "no column 'u'"), (t.iloc[:0], 'empty')]:
        with pytest.raises(BadValueError, match=msg): to_interactions(bad, 'u', 'i', 'w')
    with pytest.raises(BadValueError, match='not both'): to_interactions(t, 'u', 'i', 'w', positive=4)


def test_confidence_repeats_and_the_merged_members_average_the_logits():
    assert repeats([1, 1], alpha=2).tolist() == [1, 1] and repeats([1, 1000], alpha=1).tolist() == [1, 5]
    ms = [SoftmaxDot(5, 7, 3) for _ in range(3)]
    for m in ms:
        for p in m.parameters(): torch.nn.init.normal_(p)
    x = torch.tensor([[1, 2], [4, 6]])
    with torch.no_grad(): torch.testing.assert_close(merge_members(ms)(x), sum(m(x) for m in ms) / 3, rtol=1e-5, atol=1e-5)


def test_ours_ranks_the_play_counts_above_popularity_and_below_the_truth(plays):
    df = plays.rename(columns={'artist': 'movie', 'plays': 'weight'})
    table, runs = clicks_table(df, seeds=(0,), peers={'the truth (oracle)': truth_recommender(true_scores(250, 150, seed=3))})
    assert table.ndcg10['most popular'] < table.ndcg10[CLICKS_OURS] < table.ndcg10['the truth (oracle)']
    assert rank_line(table, ours=CLICKS_OURS).startswith('ndcg10=')


def test_a_saved_model_of_interactions_keeps_counts_and_history(plays, tmp_path):
    learn = train_clicks(to_interactions(plays, item_name='artist', weight_name='plays'), RANK.but(epochs=2))
    m = load_model(save_model(learn, tmp_path/'m.pth'))
    assert is_clicks(m) and m.info['alpha'] == ALPHA and m.model.n_factors == MEMBERS * RANK.learner_kwargs['n_factors']
    assert len(m.counts) == len(m.classes['artist']) and m.history is not None
    mine = set(plays[plays.user == 9].artist)
    assert not set(recommend(m, 9, n=100).artist) & mine  # history left out without `seen`
    t = rare_threshold(m.counts[1:])
    assert t > 0 and not recommend(m, 9, n=100, min_ratings=t).artist.isin(np.array(m.classes['artist'], dtype=object)[rarely_rated(m)]).any()
    new = recommend_new_user(m, check_answers(m, pd.DataFrame({'artist': [1, 2, 3]})), n=5)  # a list of items: no ratings
    assert len(new) == 5 and not new.artist.isin([1, 2, 3]).any()


def test_train_recommend_similar_from_the_command_line(model_dir, files, plays):
    d, out = model_dir
    assert 'interactions (weights from' in out and 'recipe=rank' in out and 'valid_loss=' in out
    res = run('recommend', str(d), '--user', '5', '-n', '4', '--items', str(files/'artists.csv'), '--items-name-col', 'name')
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:3] == ['artist', 'name', 'score'] and 'left out: items with fewer than' in res.stderr
    ids = [int(l.split()[0]) for l in res.stdout.splitlines()[1:]]
    assert len(ids) == 4 and not set(ids) & set(plays[plays.user == 5].artist)
    res = run('recommend', str(d), '--answers', str(files/'liked.csv'), '-n', '4')
    assert res.returncode == 0 and not {2, 4, 6} & {int(l.split()[0]) for l in res.stdout.splitlines()[1:]}, res.stderr
    res = run('similar', str(d), 'Artist 2', '-n', '3', '--items', str(files/'artists.csv'), '--items-name-col', 'name')
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 4, res.stderr


def test_a_tab_separated_file_is_read_by_its_header_or_by_sep(files):
    for extra in ([], ['--sep', '\\t']):
        res = run('train', '--recipe', 'rank', '--ratings', str(files/'plays.tsv'), '--item-col', 'artist', '--weight-col', 'plays',
                  '--out', str(files/f'tsv{len(extra)}'), '--epochs', '1', *extra)
        assert res.returncode == 0, res.stderr
        assert ("columns separated by '\\t'" in res.stdout) == (not extra)  # said when found by itself


def test_positive_turns_ratings_into_interactions(tmp_path):
    from ajtfb_collab.synthetic import synthetic_ratings
    synthetic_ratings(n_users=80, n_items=40, n_ratings=2500, seed=2).to_csv(tmp_path/'r.csv', index=False)
    res = run('train', '--recipe', 'rank', '--ratings', str(tmp_path/'r.csv'), '--positive', '4', '--out', str(tmp_path/'m'), '--epochs', '2')
    assert res.returncode == 0 and 'interactions (rating at least 4)' in res.stdout, res.stderr
    res = run('rank-eval', '--ratings', str(tmp_path/'r.csv'), '--positive', '4', '--no-peers')
    assert res.returncode == 0, res.stderr
    last = dict(kv.split('=') for kv in res.stdout.strip().splitlines()[-1].split())
    assert list(last) == ['ndcg10', 'map10', 'p10', 'r10', 'pop_ndcg10', 'ease_ndcg10', 'als_ndcg10'] and last['als_ndcg10'] == 'nan'


@pytest.mark.parametrize('content,args,message', [
    ('user,artist,plays\n', [], 'has a header but no rows'),
    ('user,artist,plays\n1,2,-1\n1,3,2\n2,2,1\n2,3,1\n3,3,1\n', [], "'plays' has 1 value(s) that are not numbers of at least 0"),
    ('user,artist,plays\n1,2,x\n1,3,2\n2,2,1\n2,3,1\n3,3,1\n', [], "first 'x' at row 0"),
    ('who,artist,plays\n1,2,1\n', [], "no column 'user' (columns: who, artist, plays)"),
    ('user,artist,plays\n1,2,1\n1,3,2\n2,2,1\n2,3,1\n3,3,1\n', ['--recipe', 'bayes'], '--recipe bayes trains on ratings; interactions'),
])
def test_bad_input_is_one_line_status_2_nothing_written(tmp_path, content, args, message):
    (tmp_path/'p.csv').write_text(content)
    res = run('train', '--recipe', 'rank', '--ratings', str(tmp_path/'p.csv'), '--item-col', 'artist', '--weight-col', 'plays',
              '--out', str(tmp_path/'m'), *args)
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path/'m'/'model.pth').exists()


def test_the_page_of_a_model_of_interactions_takes_a_list_of_items(model_dir, files):
    d, _ = model_dir
    m = load_model(d/'model.pth')
    items = pd.read_csv(files/'artists.csv')
    page = Page(m, items, items_name_col='name')
    assert page.clicks and page.min_ratings == rare_threshold(m.counts[1:])
    recs = page.recommend(['Artist 2', 'Artist 4'], 5)  # a list of items: no stars
    assert len(recs) == 5 and list(recs.columns) == ['movie', 'score', 'because you like']
    assert page.add([], 'Artist 2', 3)[0] == [['Artist 2', 1.0]]  # whatever the slider, a choice
    from gradio_client import Client
    demo = make_app(m, items, items_name_col='name')
    url = serve(demo)
    try:
        table = Client(url, verbose=False).predict(['Artist 2', 'Artist 4'], 5, api_name='/recommend')
        assert [r[0] for r in table['data']] == recs.movie.tolist()
    finally: stop(demo)
