"""The page (`ajtfb_collab.app`): its pure functions for every model kind, its API over HTTP, and the page itself in a
real browser (Playwright driving Debian's Chromium: `apt-get install -y chromium`, never `playwright install`)."""
import json, os, shutil, tempfile, threading, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
os.environ.setdefault('GRADIO_TEMP_DIR', tempfile.mkdtemp(prefix='ajtfb-collab-gradio-'))  # checked empty: the page writes nothing
from ajtfb_collab.core import BadValueError, UnknownNameError
from ajtfb_collab.synthetic import synthetic_ratings
from ajtfb_collab.inference import save_model, load_model
from ajtfb_collab.kinds import model_kind
from ajtfb_collab.registry import recipes
from ajtfb_collab.app import (Batcher, Catalogue, catalogue, search, resolve, answers_table, because, recommend_answers,
                              recommend_tables, similar_to, item_map, existing_user, describe, make_app, serve, stop)
import gradio as gr
from conftest import needs_real_data

KINDS = ['fast', 'book', 'nn', 'bayes', 'rank']


@pytest.fixture(scope='module')
def ratings():
    return synthetic_ratings(n_users=60, n_items=40, n_ratings=2000, seed=3)


@pytest.fixture(scope='module', params=KINDS)
def saved(request, ratings, tmp_path_factory):
    "A model of each recipe, trained briefly on synthetic ratings, saved and loaded back as the page loads it."
    r = recipes()[request.param]
    learn = r.but(epochs=20 if request.param == 'bayes' else 2).train(ratings, progress=False)
    return load_model(save_model(learn, tmp_path_factory.mktemp(request.param)/'model.pth'))


# ---------------------------------------------------------------- the catalogue

def test_search_name_first_then_starts_then_popular():
    cat = Catalogue(['a', 'b', 'c', 'd'], ['Star Trek', 'The Star', 'Star', 'Lone Star Wars'], np.array([5, 50, 1, 9]))
    assert search(cat, 'star') == ['Star', 'Star Trek', 'The Star', 'Lone Star Wars']  # the name, starts (by ratings), contains
    assert search(cat, 'STAR', limit=2) == ['Star', 'Star Trek']
    assert search(cat, 'wars') == ['Lone Star Wars'] and search(cat, '') == [] and search(cat, 'zzz') == []


def test_search_in_a_large_catalogue():
    n = 87_585  # MovieLens 32M's movies
    cat = Catalogue(list(range(n)), [f'Movie number {i}' for i in range(n)], np.arange(n))
    assert search(cat, 'movie number 4242')[0] == 'Movie number 4242'  # the whole name first, among many
    assert search(cat, 'number 4242') == [f'Movie number 4242{i}' for i in range(9, -1, -1)] + ['Movie number 4242']  # then by ratings
    assert len(search(cat, 'movie', limit=20)) == 20


def test_names_shared_by_two_items_are_made_unique(ratings):
    learn = recipes()['fast'].but(epochs=1).train(ratings, progress=False)
    items = pd.DataFrame({'title': [f'Movie {i}' for i in range(1, 41)], 'name': ['Twice' if i < 3 else f'Film {i}' for i in range(1, 41)]})
    cat = catalogue(learn, items, items_id_col='title', items_name_col='name')
    assert len(set(cat.names)) == len(cat.names) and {'Twice [Movie 1]', 'Twice [Movie 2]', 'Film 40'} <= set(cat.names)
    assert resolve(cat, learn, 'Twice [Movie 2]') == 'Movie 2' and resolve(cat, learn, 'Film 5') == 'Movie 5'
    assert resolve(cat, learn, 'Movie 5') == 'Movie 5'  # or the id itself
    with pytest.raises(UnknownNameError, match="unknown movie 'Twice'; did you mean"): resolve(cat, learn, 'Twice')
    with pytest.raises(BadValueError, match="no column 'nope'"): catalogue(learn, items, items_id_col='title', items_name_col='nope')


# ---------------------------------------------------------------- every model kind

def test_answers_checked_on_the_models_scale(saved):
    cat = catalogue(saved)
    if model_kind(saved.model).ranks:
        assert len(answers_table(saved, cat, [['Movie 1', 5.5]])) == 1  # a ranker takes any finite number as a choice
    else:
        with pytest.raises(BadValueError, match="is not on the model's scale"): answers_table(saved, cat, [['Movie 1', 5.5]])
    for bad, msg in [([['Nope', 4]], r"unknown item\(s\) in answers: \['Nope'\]"),
                     ([['Movie 1', 4], ['Movie 1', 3]], "more than once"),
                     ([[f'Movie {i % 40}', 4] for i in range(201)], '201 answers: at most 200'),
                     ([['Movie 1']], r'each answer is a pair \[movie, rating\]')]:
        with pytest.raises((BadValueError, UnknownNameError), match=msg): answers_table(saved, cat, bad)


def test_recommend_leaves_out_what_was_rated_and_says_why(saved):
    cat = catalogue(saved)
    answers = [['Movie 1', 5], ['Movie 2', 4], ['Movie 3', 1]]
    recs = recommend_answers(saved, cat, answers, n=10)
    label = 'score' if model_kind(saved.model).ranks else 'predicted rating'
    assert list(recs.columns) == ['movie', label, 'because you rated'] and len(recs) == 10
    assert not set(recs.movie) & {'Movie 1', 'Movie 2', 'Movie 3'}
    assert recs[label].is_monotonic_decreasing and set(recs['because you rated']) <= {'Movie 1', 'Movie 2', 'Movie 3'}
    assert len(recommend_answers(saved, cat, [], n=5)) == 5  # nobody: what the model likes best overall
    with pytest.raises(BadValueError, match='n must be a whole number, at least 1'): recommend_answers(saved, cat, answers, n=0)


def test_answers_move_the_recommendations(saved):
    "Fold-in is the model kind's own: visitors who chose other movies get other lists; a rating model also reads the stars."
    cat = catalogue(saved)
    items = cat.items[:10]
    a = recommend_answers(saved, cat, [[i, 5] for i in items[:5]], n=10)
    b = recommend_answers(saved, cat, [[i, 5] for i in items[5:]], n=10)
    assert a.movie.tolist() != b.movie.tolist()
    if not model_kind(saved.model).ranks:  # a ranker takes every answer as a choice, whatever its rating
        c = recommend_answers(saved, cat, [[i, 1] for i in items[:5]], n=10)
        assert a.movie.tolist() != c.movie.tolist()


def test_because_is_the_nearest_rated_item(saved):
    f = model_kind(saved.model).item_factors()
    row = {t: j for j, t in enumerate(saved.classes['title'])}
    m = model_kind(saved.model).n_members
    cos = lambda x, y: float(torch.nn.functional.cosine_similarity(f[row[x]].view(m, -1), f[row[y]].view(m, -1), dim=-1).mean())
    rated = ['Movie 1', 'Movie 2', 'Movie 3']
    for rec in ['Movie 10', 'Movie 20']:
        assert because(saved, rated, [rec]) == [max(rated, key=lambda r: cos(rec, r))]


def test_batched_fold_ins_answer_each_visitor_as_alone(saved):
    cat = catalogue(saved)
    visitors = [[['Movie 1', 5], ['Movie 2', 4]], [], [['Movie 9', 1]]]
    together = recommend_tables(saved, cat, [answers_table(saved, cat, a) for a in visitors], [6, 4, 3])
    for a, t, n in zip(visitors, together, [6, 4, 3]):
        alone = recommend_answers(saved, cat, a, n=n)
        assert t.movie.tolist() == alone.movie.tolist()


def test_similar_and_rare_movies(saved, ratings):
    cat = catalogue(saved, ratings=ratings)
    like = similar_to(saved, cat, 'Movie 1', n=5)
    assert len(like) == 5 and 'Movie 1' not in set(like.movie) and like.similarity.is_monotonic_decreasing
    cut = int(np.median(cat.counts))
    sturdy = similar_to(saved, cat, 'Movie 1', n=5, min_ratings=cut)
    assert (sturdy.ratings >= cut).all()
    with pytest.raises(UnknownNameError, match="unknown movie 'Nope'"): similar_to(saved, cat, 'Nope')


def test_map_user_and_summary(saved, ratings):
    cat = catalogue(saved, ratings=ratings)
    points = item_map(saved, cat)
    assert len(points) == len(cat.items) and points.ratings.is_monotonic_decreasing
    assert np.isfinite(points[['pc1', 'pc2']].to_numpy()).all()
    top, recs = existing_user(saved, cat, ratings, 7, n=5)
    assert top.rating.is_monotonic_decreasing and not set(recs.movie) & set(ratings.query('user == 7').title)
    with pytest.raises(UnknownNameError, match="unknown user '99999'"): existing_user(saved, cat, ratings, 99999)
    text = describe(saved)
    assert type(saved.model).__name__ in text and ('score' in text if model_kind(saved.model).ranks else 'ratings 1 to 5 in steps of 1' in text)


def test_batcher_groups_requests_and_keeps_errors_apart():
    calls = []
    def double(xs):
        calls.append(len(xs)); threading.Event().wait(0.05)
        if 'bad' in xs: raise BadValueError('bad input')
        return [2 * x for x in xs]
    b = Batcher(double)
    with ThreadPoolExecutor(8) as pool: got = list(pool.map(b, range(24)))
    assert got == [2 * x for x in range(24)] and len(calls) < 24
    with pytest.raises(BadValueError, match='bad input'): b('bad')
    assert b(4) == 8


# ---------------------------------------------------------------- over HTTP, as a script calls it

def post(url, api, *data):
    "The page's event `api` over HTTP: `(status, outputs or error message)`."
    req = urllib.request.Request(f'{url}/gradio_api/run/{api}', json.dumps({'data': list(data)}).encode(),
                                 {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=60) as r: return r.status, json.loads(r.read())['data']
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read()).get('error')


@pytest.fixture(scope='module')
def own_columns(tmp_path_factory):
    "A model trained by the command line from a ratings CSV with its own column names, and its files."
    from ajtfb_collab.cli import run_command
    d = tmp_path_factory.mktemp('own')
    r = synthetic_ratings(n_users=60, n_items=40, n_ratings=2000, seed=4).rename(columns={'user': 'who', 'title': 'film', 'rating': 'stars'})
    r['stars'] = np.clip(r.stars - 0.5 * (np.arange(len(r)) % 2), 0.5, 5)  # half stars, as MovieLens' newer files have them
    r.to_csv(d/'ratings.csv', index=False)
    assert run_command('train', ['--out', str(d/'m'), '--ratings', str(d/'ratings.csv'), '--user-col', 'who', '--item-col', 'film',
                                 '--rating-col', 'stars', '--epochs', '3']) == 0
    return d


def test_api_on_a_csv_with_its_own_columns(own_columns):
    d = own_columns
    demo = make_app(d/'m'/'model.pth', ratings=d/'ratings.csv')
    url = serve(demo).rstrip('/')
    try:
        status, (found,) = post(url, 'search', 'movie 1', 5)
        assert status == 200 and found[0] == 'Movie 1'
        status, (table,) = post(url, 'recommend', [['Movie 1', 4.5], ['Movie 2', 1]], 7)
        assert status == 200 and len(table['data']) == 7 and table['headers'][0] == 'movie'
        assert not {'Movie 1', 'Movie 2'} & {row[0] for row in table['data']}
        status, (like,) = post(url, 'similar', 'Movie 3', 4, 0)
        assert status == 200 and len(like['data']) == 4
        for args, msg in [([['Movie 1', 4.25]], "rating 4.25 for 'Movie 1' is not on the model's scale, 0.5 to 5 in steps of 0.5"),
                          ([['Movie 1', 6]], "is not on the model's scale"), ([['Nope', 4]], "unknown item(s) in answers: ['Nope']"),
                          ([['Movie 1', 4], ['Movie 1', 5]], 'more than once'), ([[f'Movie {i % 40}', 3] for i in range(201)], 'at most 200')]:
            status, error = post(url, 'recommend', args, 5)
            assert status == 500 and msg in error, (args, error)  # a Gradio error with the page's one message
        status, error = post(url, 'similar', 'Nope', 4, 0)
        assert status == 500 and "unknown movie 'Nope'" in error
    finally: stop(demo)


def test_serve_refuses_a_port_in_use():
    learn = recipes()['fast'].but(epochs=1).train(synthetic_ratings(n_users=30, n_items=20, n_ratings=600, seed=1), progress=False)
    model = load_model(save_model(learn, Path(tempfile.mkdtemp())/'m.pth'))
    first, second = make_app(model), make_app(model)
    port = int(serve(first).rstrip('/').rsplit(':', 1)[1])
    try:
        with pytest.raises(BadValueError, match=f'cannot serve on 127.0.0.1:{port}'): serve(second, port=port)
    finally: stop(first)


# ---------------------------------------------------------------- in a real browser

CHROMIUM = '/usr/bin/chromium'
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() or not shutil.which('chromium'),
                                    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (never `playwright install`)")


@pytest.fixture(scope='module')
def page_url():
    "The page on MovieLens 100k's fast model, trained here, served on this machine for the browser tests."
    from ajtfb_collab.data import load_ratings
    ratings = load_ratings()
    learn = recipes()['fast'].train(ratings, progress=False)
    model = load_model(save_model(learn, Path(tempfile.mkdtemp())/'model.pth', info=dict(trained_on='MovieLens 100k', recipe='fast')))
    demo = make_app(model, ratings=ratings)
    url = serve(demo)
    yield url
    stop(demo)


@pytest.fixture(scope='session')
def browser_type_launch_args(browser_type_launch_args):
    "pytest-playwright's `browser` fixture, launched as Debian's Chromium."
    return {**browser_type_launch_args, 'executable_path': CHROMIUM, 'args': ARGS}


def opened(browser, url):
    "A new browser context (a visitor of its own) on the page, and the addresses it requested."
    context = browser.new_context(viewport={'width': 1280, 'height': 1160})
    page, asked = context.new_page(), []
    page.on('request', lambda r: asked.append(r.url))
    page.goto(url)
    page.wait_for_selector('#query')
    return context, page, asked


def rate(page, text, stars=None):
    "Type part of a title, take the first match, give it `stars`, add it."
    query = page.locator('#query textarea, #query input').first
    query.fill(''); query.press_sequentially(text, delay=20)  # typed, key by key, as a person types
    pick = page.locator('#pick input').first
    page.wait_for_function("([el, t]) => el.value.toLowerCase().includes(t)", arg=[pick.element_handle(), text.split()[0].lower()])
    if stars is not None:
        box = page.locator('#stars input[type=number]')
        box.fill(str(stars)); box.press('Enter')
    page.locator('#add').click()
    return pick.input_value()


def table(page, elem_id) -> list[list[str]]:
    "The rows of a Gradio table on the page, as text."
    cells = "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))"
    return page.locator(f'#{elem_id} div[role=row]').evaluate_all(cells)  # the table's rows (its header row is a `tr`)


def rows_of(page, elem_id, n, timeout=30_000):
    page.wait_for_function(f"() => document.querySelectorAll('#{elem_id} div[role=row]').length == {n}", timeout=timeout)
    return table(page, elem_id)


@needs_real_data
@needs_chromium
def test_rate_three_movies_and_get_ten(browser, page_url):
    context, page, asked = opened(browser, page_url)
    try:
        rated = [rate(page, 'star wars', 5), rate(page, 'empire strikes', 5)]
        rows_of(page, 'rated', 2)
        rated.append(rate(page, 'titanic', 1))
        mine = rows_of(page, 'rated', 3)
        assert [r[0] for r in mine] == rated and rated[0] == 'Star Wars (1977)' and [r[1] for r in mine] == ['5', '5', '1']
        page.locator('#recommend').click()
        recs = rows_of(page, 'recs', 10)
        assert len({r[0] for r in recs}) == 10 and not {r[0] for r in recs} & set(rated)  # ten titles, none rated
        assert {r[2] for r in recs} <= set(rated)  # each because of a rated movie
        shot = os.environ.get('AJTFB_COLLAB_SCREENSHOT')  # the picture in the README and the page's notebook
        if shot: page.screenshot(path=shot, full_page=False)
        assert all(u.startswith(page_url.rstrip('/')) or u.startswith('data:') for u in asked), sorted(set(asked))  # nothing leaves the machine
    finally: context.close()


@needs_real_data
@needs_chromium
def test_similar_movies_of_star_wars_hold_its_sequels(browser, page_url):
    context, page, _ = opened(browser, page_url)
    try:
        page.get_by_role('tab', name='Movies like this').click()
        page.locator('#like-query textarea, #like-query input').first.press_sequentially('star wars', delay=20)
        page.wait_for_function("() => document.querySelector('#like-pick input').value === 'Star Wars (1977)'")
        box = page.locator('#min-ratings input')
        box.fill('100'); box.press('Enter')
        page.locator('#like-go').click()
        like = {r[0] for r in rows_of(page, 'like-table', 10)}
        assert {'Empire Strikes Back, The (1980)', 'Return of the Jedi (1983)'} <= like
    finally: context.close()


@needs_real_data
@needs_chromium
def test_unknown_title_shows_the_notice(browser, page_url):
    context, page, _ = opened(browser, page_url)
    try:
        pick = page.locator('#pick input').first
        pick.fill('No Such Movie (2031)'); pick.press('Enter')
        page.locator('#add').click()
        notice = page.get_by_text("unknown movie 'No Such Movie (2031)'")
        notice.first.wait_for(timeout=15_000)
        assert 'Traceback' not in page.content()
        assert table(page, 'rated') == []  # nothing added
    finally: context.close()


@needs_real_data
@needs_chromium
def test_two_visitors_keep_their_own_ratings(browser, page_url):
    (ca, a, _), (cb, b, _) = opened(browser, page_url), opened(browser, page_url)
    try:
        rate(a, 'star wars', 5); rate(b, 'titanic', 2)
        assert [r[0] for r in rows_of(a, 'rated', 1)] == ['Star Wars (1977)']
        assert [r[0] for r in rows_of(b, 'rated', 1)] == ['Titanic (1997)']
        rate(a, 'fargo', 4)
        assert [r[0] for r in rows_of(a, 'rated', 2)] == ['Star Wars (1977)', 'Fargo (1996)']
        assert [r[0] for r in table(b, 'rated')] == ['Titanic (1997)']  # b never sees a's
    finally: ca.close(); cb.close()


def test_the_page_wrote_no_file():
    "Runs last in this file: everything above served pages; Gradio's own folder for files stayed empty."
    assert not [p for p in Path(os.environ['GRADIO_TEMP_DIR']).rglob('*') if p.is_file()]
