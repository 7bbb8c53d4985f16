"""Shared fixtures of the tool tests: tiny synthetic data and one tiny training run
(tools/train.py) reused by the train/test, resume and export tests."""
from __future__ import annotations

import os.path as osp
from types import SimpleNamespace

import pytest

from toolrun import KILL_ITER, PYTHON, TINY_CONFIG, TOTAL_ITERS, data_options, run_tool


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """8 synthetic 48x64 scenes (6 train, 2 val), written in-process (< 1 s)."""
    from mtdense.datasets.synthetic import SyntheticDatasetWriter
    root = str(tmp_path_factory.mktemp('synthetic_tiny'))
    SyntheticDatasetWriter(root, 8, 48, 64, seed=0).run(progress=False)
    return root


@pytest.fixture(scope='session')
def tiny_run(synthetic_root, tmp_path_factory) -> SimpleNamespace:
    """tools/train.py on the tiny config: 8 iterations, checkpoints at 4 and 8."""
    work_dir = str(tmp_path_factory.mktemp('tiny_run'))
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir,
                     '--cfg-options', *data_options(synthetic_root),
                     f'default_hooks.checkpoint.interval={KILL_ITER}'])
    return SimpleNamespace(work_dir=work_dir, proc=proc, config=TINY_CONFIG,
                           data_root=synthetic_root,
                           ckpt=osp.join(work_dir, f'iter_{TOTAL_ITERS}.pth'),
                           ckpt_mid=osp.join(work_dir, f'iter_{KILL_ITER}.pth'))
