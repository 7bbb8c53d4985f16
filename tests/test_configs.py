"""Every shipped config parses; the runnable ones (demo, tests) build their model and pipeline."""
import copy
from pathlib import Path

import mtdense  # noqa: F401,I001  (mmcv.ops stand-in before mmseg imports)
import pytest
from mmengine.config import Config

from mtdense.registry import MODELS, TRANSFORMS
from mtdense.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py'))
RUNNABLE = [c for c in ALL if c.startswith(('configs/demo/', 'configs/tests/'))]


def test_configs_found():
    assert len(ALL) >= 20 and len(RUNNABLE) >= 7


@pytest.mark.parametrize('path', ALL)
def test_config_parses(path):
    cfg = Config.fromfile(str(ROOT / path))
    assert cfg.filename.endswith(path)


@pytest.mark.parametrize('path', RUNNABLE)
def test_runnable_config_builds(path):
    register_all_modules()
    cfg = Config.fromfile(str(ROOT / path))
    for key in ('model', 'train_dataloader', 'test_dataloader', 'test_evaluator', 'train_cfg',
                'optim_wrapper', 'param_scheduler'):
        assert key in cfg, f'{path}: no {key}'
    model_cfg = copy.deepcopy(cfg.model)
    # the demo's checkpoint is written by tools/run_demo.sh; the architecture is what is checked
    model_cfg.backbone.pop('checkpoint', None)
    model = MODELS.build(model_cfg)
    assert list(model.tasks) == list(cfg.model.tasks)
    for t in cfg.train_dataloader.dataset.pipeline:
        TRANSFORMS.build(copy.deepcopy(t))
