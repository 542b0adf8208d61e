"The layout shows the architecture: modules in an explicit order, each importing only from those before it and no private names; notebooks in reading order, the chapter first."
import ast, re
from pathlib import Path
import pytest

PKG = Path(__file__).parent.parent/'ajtfb_collab'
NBS = PKG.parent/'nbs'
# what each module builds on comes before it (the order of the architecture, not of the file names)
MODULE_ORDER = ('registry', 'core', 'kernels', 'data', 'models', 'chapter', 'datasets', 'kinds', 'interpret', 'inference', 'coldstart', 'app',
                'side_info', 'synthetic', 'fast', 'sgd', 'evaluate', 'bayes', 'topn', 'rank', 'clicks', 'distrib', 'peers', 'timing', 'bench', 'cli')
# the order a learner reads: the chapter section by section, then what goes past it, then the tools
READING_ORDER = ('01_data', '02_models', '03_embeddings', '04_chapter', '05_datasets', '06_kinds', '07_interpret', '08_inference',
                 '09_coldstart', '10_app', '11_side_info', '12_synthetic', '13_fast', '14_sgd', '15_evaluate', '16_bayes', '17_topn', '18_rank', '19_clicks',
                 '20_distrib', '21_peers', '22_timing', '23_bench', '24_cli', '25_registry', '26_core', '27_kernels', '28_profiles')


def notebook_of(module: Path) -> str:
    "The notebook a module is exported from (its header names it)."
    return re.search(r'File to edit: \.\./nbs/(\S+)\.ipynb', module.read_text()).group(1)


MODULES = {p.stem: p for p in PKG.glob('*.py') if not p.stem.startswith('_')}


def imports_of(module: Path) -> list[tuple[str, list[str]]]:
    "`(module, names)` for each `from .module import names` (relative or `ajtfb_collab.`, at any depth) and `from ajtfb_collab import module` in `module`."
    out = []
    for node in ast.walk(ast.parse(module.read_text())):
        if not isinstance(node, ast.ImportFrom) or not node.module: continue
        if node.level == 1 or node.module.startswith('ajtfb_collab.'): out.append((node.module.split('.')[-1], [a.name for a in node.names]))
        elif node.module == 'ajtfb_collab': out += [(a.name, []) for a in node.names]  # whole modules
    return out


def test_every_module_has_its_place():
    assert sorted(MODULE_ORDER) == sorted(MODULES)


def test_tests_mirror_the_modules():
    "Each module has its own test file, `tests/test_<module>.py`."
    tests = {p.stem.removeprefix('test_') for p in Path(__file__).parent.glob('test_*.py')}
    assert sorted(set(MODULES) - tests) == []


@pytest.mark.parametrize('name', sorted(MODULES))
def test_imports_only_earlier_modules_and_public_names(name):
    for other, names in imports_of(MODULES[name]):
        assert MODULE_ORDER.index(other) < MODULE_ORDER.index(name), f"{name} imports {other}, which comes after it"
        assert not [n for n in names if n.startswith('_')], f"{name} imports private names of {other}: {names}"


def test_each_notebook_is_named_after_its_module():
    for name, p in MODULES.items():
        assert notebook_of(p).split('_', 1)[1] == name, (name, notebook_of(p))


def test_notebooks_in_reading_order_one_number_each():
    nbs = sorted(p.stem for p in NBS.glob('[0-9]*.ipynb'))
    assert tuple(nbs) == READING_ORDER
    numbers = [n.split('_')[0] for n in nbs]
    assert len(numbers) == len(set(numbers)) and numbers == [f'{i:02d}' for i in range(1, len(nbs) + 1)]
    assert (NBS/'index.ipynb').exists()  # the landing page


def test_index_lists_the_reading_path():
    "The landing page's table names every notebook, in reading order; the README's table says the same."
    import json
    text = ''.join(''.join(c['source']) for c in json.loads((NBS/'index.ipynb').read_text())['cells'])
    for doc in (text, (PKG.parent/'README.md').read_text()):
        rows = re.findall(r'^\| `(?:nbs/)?(\d\d_\w+)\.ipynb`', doc, re.M)  # the first cell of each table row
        assert tuple(rows) == READING_ORDER, rows


def test_every_cell_has_an_id():
    "A cell without an id gets a new random one each time it is read, so `nbdev_export` would write new module headers every time."
    import json
    for fn in sorted(NBS.glob('*.ipynb')):
        cells = json.loads(fn.read_text())['cells']
        assert all('id' in c for c in cells), f"{fn.name}: {sum('id' not in c for c in cells)} cells without an id"
        ids = [c['id'] for c in cells]
        assert len(set(ids)) == len(ids), f"{fn.name}: cell ids repeat"
