"Data-parallel training on two CPU processes of this machine (gloo), launched with torchrun: the processes agree with each other and with one process."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from ajtfb_collab.distrib import launch, torchrun_cmd

pytest.importorskip('accelerate')
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from ddp_worker import RECIPES, ratings, Seen  # the same data and recipes in this process


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    res = launch(2, str(HERE/'ddp_worker.py'), out, timeout=120)  # killed whole if it hangs
    assert res.returncode == 0, res.stderr[-3000:]
    return [json.loads((out/f'rank{r}.json').read_text()) for r in range(2)]


@pytest.mark.parametrize('name', list(RECIPES))
def test_processes_agree_and_share_every_epoch(two_processes, name):
    a, b = (r[name] for r in two_processes)
    assert a['checksum'] == b['checksum']  # the same weights, bit for bit
    assert a['sparse'] == name.endswith(('_sparse', '_sampled'))  # the path each is meant to take
    assert a['valid'] == b['valid']  # the same validation, whole on both
    for ea, eb in zip(a['seen'], b['seen']):  # every training row once an epoch, in one process's share
        assert not set(ea) & set(eb) and sorted(ea + eb) == sorted(set(ea + eb)) and len(ea) + len(eb) == a['n_train']
    assert len(a['seen']) == 2 and abs(len(a['seen'][0]) - len(b['seen'][0])) <= len(a['seen'][0]) // 10  # two epochs, even shares


@pytest.mark.parametrize('name', list(RECIPES))
def test_same_model_as_one_process_with_the_global_batch(two_processes, name):
    one = RECIPES[name].train(ratings(), item_name='movie', seed=0, progress=False)  # the one-process batch is the global one
    assert one.dls.train.bs == two_processes[0][name]['bs']
    # the same steps on the same rows: only the order of the sums differs (1e-4: float32 rounding over two epochs)
    assert abs(float(one.recorder.values[-1][1]) - two_processes[0][name]['valid']) < 1e-4


def _workers(launcher:int) -> dict:
    "`{rank: pid}` of the processes torchrun (pid `launcher`) started."
    out = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            if int((d/'stat').read_text().rsplit(')', 1)[1].split()[1]) != launcher: continue
            env = dict(kv.split('=', 1) for kv in (d/'environ').read_text().split('\0') if '=' in kv)
        except (OSError, ValueError): continue
        if 'RANK' in env: out[int(env['RANK'])] = int(d.name)
    return out


@pytest.mark.skipif(not Path('/proc/self/environ').exists(), reason='finds the processes through /proc')
def test_killed_process_stops_the_run_and_nothing_is_saved(tmp_path):
    csv, out = tmp_path/'r.csv', tmp_path/'model'
    ratings().to_csv(csv, index=False)
    cmd = torchrun_cmd(2, '-m', 'ajtfb_collab.cli', 'train', '--ratings', csv, '--item-col', 'movie', '--out', out, '--epochs', 300)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        for line in p.stdout:  # process 0's progress: a line an epoch
            if line.split()[:1] == ['3']: break  # the fourth epoch: both processes are training
        workers = _workers(p.pid)
        assert sorted(workers) == [0, 1]
        os.kill(workers[1], signal.SIGKILL)
        start = time.perf_counter()
        rc = p.wait(timeout=60)
        stopped = time.perf_counter() - start
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    assert rc != 0 and stopped < 30  # torchrun stops the other process (SIGTERM; SIGKILL after 30 s)
    assert not (out/'model.pth').exists()
    for pid in workers.values():  # no process left behind
        assert not Path(f'/proc/{pid}').exists() or 'Z' in Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]


def test_only_gradient_recipes_train_data_parallel():
    from ajtfb_collab.distrib import check_ddp_recipe
    from ajtfb_collab.core import BadValueError
    for name in ('fast', 'rank'): check_ddp_recipe(name)
    for name, why in [('bayes', 'Gibbs sampler'), ('sgd', 'one at a time'), ('book', 'needs CUDA')]:
        with pytest.raises(BadValueError, match=why): check_ddp_recipe(name)
