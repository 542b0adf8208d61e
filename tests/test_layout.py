"The layout shows the architecture: each module imports only from modules of earlier notebooks, and no private names."
import ast, re
from pathlib import Path
import pytest

PKG = Path(__file__).parent.parent/'ajtfb_collab'


def notebook_of(module: Path) -> str:
    "The notebook a module is exported from (its header names it)."
    return re.search(r'File to edit: \.\./nbs/(\S+)\.ipynb', module.read_text()).group(1)


MODULES = {p.stem: p for p in PKG.glob('*.py') if not p.stem.startswith('_')}


def imports_of(module: Path) -> list[tuple[str, list[str]]]:
    "`(module, names)` for each `from .module import names` (relative or `ajtfb_collab.`) in `module`."
    out = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.level == 1 or node.module.startswith('ajtfb_collab.')):
            out.append((node.module.split('.')[-1], [a.name for a in node.names]))
    return out


@pytest.mark.parametrize('name', sorted(MODULES))
def test_imports_only_earlier_notebooks_and_public_names(name):
    me = notebook_of(MODULES[name])
    for other, names in imports_of(MODULES[name]):
        assert notebook_of(MODULES[other]) < me, f"{name} ({me}) imports {other} ({notebook_of(MODULES[other])})"
        assert not [n for n in names if n.startswith('_')], f"{name} imports private names of {other}: {names}"


def test_one_module_per_notebook():
    nbs = [notebook_of(p) for p in MODULES.values()]
    assert len(nbs) == len(set(nbs))
    assert {n + '.ipynb' for n in nbs} <= {p.name for p in (PKG.parent/'nbs').glob('*.ipynb')}


def test_one_number_per_notebook():
    "Notebooks are numbered in reading order, each with its own number."
    numbers = [p.name.split('_')[0] for p in (PKG.parent/'nbs').glob('[0-9]*.ipynb')]
    assert len(numbers) == len(set(numbers)), sorted(numbers)
