"""Helpers of the tool tests: run tools as subprocesses on the tiny config."""
from __future__ import annotations

import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TESTS_TOOLS = osp.dirname(osp.abspath(__file__))
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
               PYTHONPATH=os.pathsep.join([TESTS_TOOLS, ROOT, env.get('PYTHONPATH', '')]))
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


def derived_config(path: str, hooks: Sequence[str]) -> str:
    """Write a config inheriting the tiny one, with the probe hooks appended (the base's
    SafeCheckpointHook kept); ``hooks`` are ``dict(...)`` source strings."""
    with open(path, 'w') as f:
        f.write(f'_base_ = [{TINY_CONFIG!r}]\n'
                "custom_imports = dict(imports=['probe_hooks'], allow_failed_imports=False)\n"
                f"custom_hooks = [dict(type='SafeCheckpointHook'), {', '.join(hooks)}]\n")
    return path


def train_log(work_dir: str) -> str:
    """Concatenated mmengine logs (``<work_dir>/<timestamp>/<timestamp>.log``) in run order."""
    texts = []
    for stamp in sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d))):
        log = osp.join(work_dir, stamp, f'{stamp}.log')
        if osp.isfile(log):
            with open(log) as f:
                texts.append(f.read())
    return '\n'.join(texts)
