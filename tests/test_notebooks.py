"""A book held true by a check: every figure a notebook's prose states is printed or asserted by a cell of that notebook,
no prose tells history, and the README states no measured result (it points to the notebook that prints it).

A figure is a number with a decimal point (0.8498, 1.32) or a number with a unit (52 s, 8.2 GB, 18x, 71%, 3 times).
It is sourced when the same digits appear in the notebook's code (a definition, an asserted bound) or in a saved
output (a printed value). Code spans and link targets in prose are names, not claims.
"""
import json, re, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
NBS = ROOT/'nbs'
PKG = ROOT/'ajtfb_collab'

UNITS = r'(?:s|ms|µs|us|ns|min|minutes?|seconds?|hours?|GB|MB|KB|GiB|MiB|x|×|%|times)'
FIGURE = re.compile(r'(?<![\w.])(\d[\d,]*\.\d+(?:\s?' + UNITS + r')?|\d[\d,]*\s?' + UNITS + r')(?![\w]|\.\d)')
DECADE = re.compile(r'1[89]\d0s|20\d0s')  # "the 1990s": a time, not a measurement
HISTORY = re.compile(r"\b(it was \d|it was (?:slower|faster|quicker)|went from|previously|formerly|after a change|"
                     r"before this change|the earlier version|at the commit|git commit|\(was \d)", re.I)
COMMIT = re.compile(r'(?<![\w/.-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w/.-])')  # a commit hash: hex, digits and letters


def text(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def prose(md:str) -> str:
    "Markdown without its code spans, code blocks and link targets: what a reader reads as claims."
    md = re.sub(r'```.*?```', ' ', md, flags=re.S)
    md = re.sub(r'`[^`]*`', ' ', md)
    return re.sub(r'\]\([^)]*\)', ']', md)


def digits(figure:str) -> str:
    "The digits of a figure as a program prints them: no thousands separators, no unit."
    return re.sub(r'[^\d.]', '', figure.replace(',', '')).rstrip('.')


def figures(md:str) -> list:
    "`(figure, context)` for each figure the prose of `md` states."
    p = prose(md)
    out = []
    for m in FIGURE.finditer(p):
        f = m.group(1).strip()
        if DECADE.fullmatch(f) or not digits(f).strip('0.') or p[m.end():m.end() + 1] == '+': continue  # a version floor: Python 3.10+
        out.append((f, p[max(0, m.start() - 50):m.end() + 20].replace('\n', ' ')))
    return out


def history(md:str) -> list:
    "Phrases of `md` that tell what was rather than what is, and commit hashes."
    return [m.group(1) for m in HISTORY.finditer(prose(md))] + [f'commit {m.group(0)}' for m in COMMIT.finditer(md)]


def sources(nb:dict) -> str:
    "Everything a notebook's cells hold or print: code, streams, and the text of rich outputs (digits only count)."
    out = []
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        out.append(text(c['source']))
        for o in c.get('outputs', []):
            out.append(text(o.get('text')))
            out += [text(o.get('data', {}).get(k)) for k in ('text/plain', 'text/markdown', 'text/html')]
    return '\n'.join(out).replace(',', '').replace('_', '')


def sourced(figure:str, src:str) -> bool:
    d = digits(figure)
    return d in src or ('.' in d and d.rstrip('0').rstrip('.') in src)


def problems(fn:Path) -> list:
    "What breaks the rule in notebook `fn`: `cell N: ...` for each unsourced figure and each history phrase."
    nb = json.loads(Path(fn).read_text())
    src, found = sources(nb), []
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'markdown': continue
        md = text(c['source'])
        found += [f'cell {i}: {f!r} is printed or asserted by no cell: "...{ctx}..."' for f, ctx in figures(md) if not sourced(f, src)]
        found += [f'cell {i}: tells history: {h!r}' for h in history(md)]
    return found


def readme_problems(readme:Path=ROOT/'README.md', pkg:Path=PKG) -> list:
    "Measured figures the README states: only a definition the package's code holds (a constant) may appear there."
    code = '\n'.join(p.read_text() for p in pkg.glob('*.py')).replace(',', '').replace('_', '')
    md = Path(readme).read_text()
    return ([f'README states {f!r}: point to the notebook that prints it ("...{ctx}...")' for f, ctx in figures(md) if not sourced(f, code)] +
            [f'README tells history: {h!r}' for h in history(md)])


NOTEBOOKS = sorted(p.name for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_every_figure_has_a_source_and_no_prose_tells_history(name):
    assert problems(NBS/name) == []


def test_readme_states_no_measured_result():
    assert readme_problems() == []


def _planted(tmp_path, source:str, name:str='13_fast.ipynb') -> Path:
    "A copy of notebook `name` with one more markdown cell."
    fn = tmp_path/name
    shutil.copy(NBS/name, fn)
    nb = json.loads(fn.read_text())
    nb['cells'].append(dict(cell_type='markdown', metadata={}, source=[source]))
    fn.write_text(json.dumps(nb))
    return fn


@pytest.mark.parametrize('sentence, found', [
    ('An epoch takes 12.345 s on this machine.', "'12.345 s' is printed or asserted by no cell"),
    ('The sampler is 7.25x quicker than its peer.', "'7.25x' is printed or asserted by no cell"),
    ('It peaks at 9,876 MB.', "'9,876 MB' is printed or asserted by no cell"),
    ('The sweep went from 3 s to 2.', "tells history: 'went from'"),
    ('The sampler of commit 4105ac4 read rows at random.', "tells history: 'commit 4105ac4'"),
])
def test_a_planted_figure_or_history_fails(tmp_path, sentence, found):
    "The check finds what a sentence plants in a copy of a notebook, and only that."
    new = [p for p in problems(_planted(tmp_path, sentence)) if p not in problems(NBS/'13_fast.ipynb')]
    assert len(new) == 1 and found in new[0], new


def test_printed_asserted_and_named_figures_pass(tmp_path):
    "A figure a cell prints, a bound a cell asserts, a name in a code span and a decade are not claims to source."
    before = problems(NBS/'13_fast.ipynb')
    fn = _planted(tmp_path, 'Ratings from the 1990s; `0.123456` is a name, and so is [a link](https://example.org/v1.25x).')
    assert problems(fn) == before
    nb = json.loads(fn.read_text())
    nb['cells'] += [dict(cell_type='code', metadata={}, execution_count=None, source=['assert mse < 0.8765'], outputs=[]),
                    dict(cell_type='markdown', metadata={}, source=['Its valid MSE stays under 0.8765, and a pass takes 4.25 s.']),
                    dict(cell_type='code', metadata={}, execution_count=None, source=['print(t)'],
                         outputs=[dict(output_type='stream', name='stdout', text=['4.2500 s\n'])])]
    fn.write_text(json.dumps(nb))
    assert problems(fn) == before


def test_readme_check_fails_on_a_measured_figure(tmp_path):
    readme = tmp_path/'README.md'
    readme.write_text((ROOT/'README.md').read_text() + '\nOn one thread the sampler is 2.63x quicker than myFM.\n')
    found = readme_problems(readme)
    assert len(found) == 1 and "'2.63x'" in found[0], found
