"""The wheel is self-contained: installed into a fresh virtualenv, ``mtdense`` trains and infers
from a directory outside the checkout, configs by name (slow: builds a wheel and a venv).

The fresh venv reuses the already installed heavy dependencies (torch, mmcv, ...) through a
``.pth`` line naming this environment's site-packages, so nothing is downloaded; the
checkout's editable install is not visible there (``.pth`` files of an added directory are
not executed), so ``mtdense`` comes from the wheel alone.
"""
import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (f'{" ".join(map(str, cmd))} -> {proc.returncode}\n'
                                  f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')
    return proc


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', PIP_NO_INDEX='1',
               PYTHONPATH='')
    dist = tmp_path / 'dist'
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w', dist,
          ROOT], tmp_path, env)
    wheels = list(dist.glob('mtdense-*.whl'))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert 'mtdense/.mim/configs/vmt/vmt_swin-t_pascal-mt.py' in names
    assert 'mtdense/.mim/configs/baselines/pascal_context_swin_t_single_task.json' in names
    assert any(n.endswith('entry_points.txt') for n in names)

    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', venv], tmp_path, env)
    py = venv / 'bin' / 'python'
    target = Path(_run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                       tmp_path, env).stdout.strip())
    here = [p for p in site.getsitepackages() + [sysconfig.get_paths()['purelib']]
            if Path(p).is_dir()]
    (target / 'host_deps.pth').write_text('\n'.join(dict.fromkeys(here)) + '\n')
    _run([py, '-m', 'pip', 'install', '--no-deps', '--no-index', wheels[0]], tmp_path, env)

    work = tmp_path / 'elsewhere'
    work.mkdir()
    cli = venv / 'bin' / 'mtdense'
    where = _run([py, '-c', 'import mtdense; print(mtdense.__file__)'], work, env).stdout
    assert str(target) in where and str(ROOT) not in where  # the wheel, not the checkout
    _run([cli, 'make-synthetic', '--num', '6', '--size', '48', '64', '--out', 'data', '--quiet'],
         work, env)
    _run([cli, 'train', 'tests/tiny_vmt_synthetic', '--iters', '2', '--data-root', 'data',
          '--work-dir', 'run'], work, env)
    assert (work / 'run' / 'iter_2.pth').is_file()
    out = _run([cli, 'infer', 'data/images', '--config', 'tests/tiny_vmt_synthetic',
                '--checkpoint', 'run/iter_2.pth', '--out', 'pred', '--batch-size', '2',
                '--save-raw', '--cfg-options', 'test_dataloader.dataset.data_root=data'],
               work, env)
    assert '6 image(s)' in out.stdout
    assert len(list((work / 'pred').glob('*.npz'))) == 6
    assert 'vmt/vmt_swin-t_pascal-mt' in _run([cli, 'list-configs'], work, env).stdout
