"""Every shipped config builds and runs: one training iteration and one evaluation.

Each experiment config is loaded from its file, shrunk through the config system
(tests/smoke.py: tiny backbone of the same type, fixture data) and run by the Runner on a
fixture tree in its dataset's exact release layout at the real image sizes (PASCAL's
varied sizes, NYUD's 480 x 640), with its own train and test pipelines, schedule shape,
losses and evaluator. The ``_base_`` fragments are parsed (they are not experiments).
"""
import math
from pathlib import Path

import mtdense  # noqa: F401,I001  (mmcv.ops stand-in before mmseg imports)
import pytest
from mmengine.config import Config

from mtdense.benchmark.compose import compose, load_row
from mtdense.engine.runner import build_runner
from mtdense.utils import register_all_modules
from smoke import dataset_type, shrink

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py'))
FRAGMENTS = [c for c in ALL if c.startswith('configs/_base_/')]
EXPERIMENTS = [c for c in ALL if c not in FRAGMENTS]
METHODS = ['vmt', 'vmt_lite', 'mtlora', 'single_task_ft', 'multi_task_ft', 'decoder_only',
           'bitfit', 'per_task_adapter', 'per_task_lora']


def test_zoo_is_complete():
    """configs/<method>/<method>_<backbone>_<dataset>.py for every method and dataset."""
    names = {Path(c).stem for c in EXPERIMENTS}
    for method in METHODS:
        for ds in ('pascal-mt', 'nyud-mt'):
            stems = [n for n in names if n.startswith(f'{method}_swin-t_{ds}')]
            assert stems, f'no config for {method} on {ds}'
            assert all(Path(c).parent.name == method
                       for c in EXPERIMENTS if Path(c).stem in stems)
    for bb in ('swin-s', 'swin-b', 'vit-b'):
        for ds in ('pascal-mt', 'nyud-mt'):
            assert f'vmt_{bb}_{ds}' in names
    assert (ROOT / 'configs' / 'single_task_ft' / 'README.md').is_file()
    for method in METHODS:
        assert (ROOT / 'configs' / method / 'README.md').is_file(), method


@pytest.mark.parametrize('path', FRAGMENTS)
def test_fragment_parses(path):
    assert Config.fromfile(str(ROOT / path)).filename.endswith(path)


def load_experiment(path: str) -> Config:
    """The config a user runs from ``path``: a benchmark method row (a file with a
    ``benchmark`` dict) runs composed with its family's protocol, as the benchmark runs it."""
    cfg = Config.fromfile(str(ROOT / path))
    if 'benchmark' in cfg:
        cfg = compose(load_row(str(ROOT / path)))
    return cfg


@pytest.mark.parametrize('path', EXPERIMENTS)
def test_config_trains_one_iteration_and_evaluates(path, fixture_trees, tmp_path):
    register_all_modules()
    cfg = load_experiment(path)
    shrink(cfg, fixture_trees[dataset_type(cfg)], str(tmp_path))
    runner = build_runner(cfg)
    runner.train()  # 1 iteration, then validation (val_interval = 1)
    metrics = runner.val_loop.run()
    tasks = list(cfg.model.tasks)
    for task in tasks:
        keys = [k for k in metrics if k.startswith(f'{task}/')]
        assert keys, f'{path}: no metric for {task}'
        bad = {k: metrics[k] for k in keys if not math.isfinite(metrics[k])}
        assert not bad, f'{path}: non-finite metrics {bad}'
    if 'multi_task/delta_m' in metrics:
        assert math.isfinite(metrics['multi_task/delta_m'])
    assert (tmp_path / 'iter_1.pth').is_file()
