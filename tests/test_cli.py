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
