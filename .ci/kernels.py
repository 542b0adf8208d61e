#!/usr/bin/env python
"""Run notebooks as a reader runs them: each alone in a Jupyter kernel, with the kernel's default threads.

Every cell must run; no saved output may be over 1 MB (figures apart), show a raw progress-bar stream, or write to
standard error (a library warning, OpenBLAS's thread warnings: silence them where they come from). Cells flagged
`#| slow` are left out, as `nbdev_test` leaves them out, unless `--slow`. `--save` writes the executed notebooks back
(then run `nbdev_clean`); a slow cell that did not run keeps the outputs it had.

    python .ci/kernels.py                     # every notebook of nbs/
    python .ci/kernels.py 20_distrib 23_bench # some of them
    python .ci/kernels.py --save --slow       # refresh every saved output, slow cells included
"""
import argparse, json, os, re, sys, time, warnings
from pathlib import Path
import nbformat
from nbformat.validator import MissingIDFieldWarning
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parent.parent/'nbs'
LIMIT = 1 << 20  # bytes of one saved output, figures apart
warnings.filterwarnings('ignore', category=MissingIDFieldWarning)  # nbdev_clean strips the cells' ids; nbformat would add them back


def flags(cell) -> set:
    "The nbdev flags of a code cell's first lines (`#| slow`, `#| export`...)."
    return {m.group(1) for m in re.finditer(r'^#\|\s*(\S+)', cell.source, re.M)}


def problems(i, cell) -> list:
    "What is wrong with the outputs of cell `i`."
    found = []
    for o in cell.get('outputs', []):
        text = o.get('text', '') if o.output_type == 'stream' else ''.join(
            str(v) for k, v in o.get('data', {}).items() if not k.startswith('image/'))
        if len(text.encode()) > LIMIT: found.append(f'cell {i}: an output of {len(text.encode()) / 2**20:.1f} MB')
        if o.output_type == 'stream' and o.name == 'stderr': found.append(f'cell {i} writes to stderr: {text.strip()[:300]!r}')
        if o.output_type == 'stream' and ('\r' in text or '\u2588' in text): found.append(f'cell {i}: a raw progress-bar stream')
    return found


def run(name:str, slow:bool, save:bool, timeout:int) -> tuple[float, list]:
    "Execute notebook `name` in a fresh kernel: `(seconds, problems)`."
    fn = NBS/f'{name}.ipynb'
    nb = nbformat.read(fn, as_version=4)
    kept = {i: c.get('outputs', []) for i, c in enumerate(nb.cells) if c.cell_type == 'code'}
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(NBS)}})
    found, start = [], time.perf_counter()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            if 'slow' in flags(cell) and not slow: cell.outputs = kept[i]; continue
            try: client.execute_cell(cell, i)
            except Exception as e:
                found.append(f'cell {i} failed: {type(e).__name__}: ' + ' | '.join(l.strip() for l in str(e).strip().splitlines()[-4:])[:600])
                break
            found += problems(i, cell)
    seconds = time.perf_counter() - start
    if save and not any('failed' in p for p in found): nbformat.write(nb, fn)
    return seconds, found


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('names', nargs='*', help='notebooks (without .ipynb); default: every notebook of nbs/')
    p.add_argument('--slow', action='store_true', help='also run the cells flagged slow')
    p.add_argument('--save', action='store_true', help='write the executed notebooks back')
    p.add_argument('--timeout', type=int, default=3600, help='seconds a cell may take')
    a = p.parse_args()
    if 'OMP_NUM_THREADS' in os.environ: sys.exit('unset OMP_NUM_THREADS: the notebooks run with the default threads, as a reader runs them')
    names = a.names or sorted(f.stem for f in NBS.glob('*.ipynb') if not f.stem.startswith('_'))
    failed = 0
    for name in names:
        seconds, found = run(name, a.slow, a.save, a.timeout)
        print(f'{name}: {seconds:.0f} s' + (''.join(f'\n  {f}' for f in found) if found else ' ok'), flush=True)
        failed += bool(found)
    sys.exit(1 if failed else 0)


if __name__ == '__main__': main()
