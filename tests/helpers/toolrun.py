"""Helpers of the tool tests: run tools as subprocesses on the tiny config."""
from __future__ import annotations

import os
import os.path as osp
import socket
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence

from helpers import ROOT as _ROOT

ROOT = str(_ROOT)
TESTS = osp.join(ROOT, 'tests')  # on the subprocesses' PYTHONPATH: the probe hooks importable
TINY_CONFIG = osp.join(ROOT, 'configs', 'tests', 'tiny_vmt_synthetic.py')
PYTHON = sys.executable

# The shared training run: 8 iterations, checkpoints after 4 and 8 (the resume test's
# uninterrupted reference), validation at the end.
TOTAL_ITERS = 8
KILL_ITER = 4


def tool_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment of tool subprocesses: CPU, one thread each (2 shared cores, and the
    same float reduction order in every run), the probe hooks importable."""
    env = dict(os.environ)
    # CPU only, also on GPU machines: the tests check the CPU (gloo) paths and exact
    # CPU reproducibility; two ranks must not share one GPU.
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1',
               CUDA_VISIBLE_DEVICES='',
               PYTHONPATH=os.pathsep.join([TESTS, ROOT, env.get('PYTHONPATH', '')]))
    env.update(extra or {})
    return env


def run_tool(args: Sequence[str], expect_rc: Optional[int] = 0, timeout: int = 300,
             env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``args`` from the repository root; check the exit status (None: any)."""
    proc = subprocess.run([str(a) for a in args], cwd=ROOT, env=tool_env(env), timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect_rc is not None and proc.returncode != expect_rc:
        raise AssertionError(
            f'{" ".join(map(str, args))} exited with {proc.returncode} (expected {expect_rc})\n'
            f'--- stdout (tail) ---\n{proc.stdout[-4000:]}\n--- stderr (tail) ---\n'
            f'{proc.stderr[-4000:]}')
    return proc


def data_options(data_root: str) -> List[str]:
    """``--cfg-options`` values pointing every dataloader of the tiny config at data_root."""
    return [f'{split}_dataloader.dataset.data_root={data_root}'
            for split in ('train', 'val', 'test')]


def derived_config(path: str, hooks: Sequence[str], module: str = 'helpers.probe_hooks') -> str:
    """Write a config inheriting the tiny one, with hooks of ``module`` (helpers.probe_hooks or
    helpers.crash_probes) appended (the base's SafeCheckpointHook kept); ``hooks`` are
    ``dict(...)`` source strings."""
    with open(path, 'w') as f:
        f.write(f'_base_ = [{TINY_CONFIG!r}]\n'
                f"custom_imports = dict(imports=[{module!r}], allow_failed_imports=False)\n"
                f"custom_hooks = [dict(type='SafeCheckpointHook'), {', '.join(hooks)}]\n")
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous port of a distributed run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def assert_nested_equal(a: Any, b: Any, where: str) -> None:
    """``a`` and ``b`` (checkpoint parts: dicts, lists, tensors, values) are equal to the
    bit; the message names the first differing key path."""
    import torch
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f'{where}: keys {set(a) ^ set(b)}'
        for k in a:
            assert_nested_equal(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_nested_equal(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def train_log(work_dir: str) -> str:
    """Concatenated mmengine logs (``<work_dir>/<timestamp>/<timestamp>.log``) in run order."""
    texts = []
    for stamp in sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d))):
        log = osp.join(work_dir, stamp, f'{stamp}.log')
        if osp.isfile(log):
            with open(log) as f:
                texts.append(f.read())
    return '\n'.join(texts)
