"""Config edits of the tools: --iters, --data-root, the total-batch check, pretrained paths."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mtdense.engine.config_tools import (check_total_batch, drop_pretrained_paths,
                                         eval_protocol_of, set_data_root, set_eval_protocol,
                                         set_iters, set_saliency_protocol)

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / 'configs' / 'vmt' / 'vmt_swin-t_pascal-mt.py'


def test_set_iters_scales_every_iteration_setting():
    cfg = Config.fromfile(str(ZOO))
    assert cfg.train_cfg.max_iters == 46800 and cfg.param_scheduler[0].end == 3120
    set_iters(cfg, 300)
    assert cfg.train_cfg.max_iters == 300 and cfg.train_cfg.val_interval == 300
    assert cfg.default_hooks.checkpoint.interval == 300  # was 1000 > 300
    assert [s.get('begin', 0) for s in cfg.param_scheduler] == [0, 20]  # 3120 / 46800 * 300
    assert [s.end for s in cfg.param_scheduler] == [20, 300]
    with pytest.raises(ValueError, match='>= 1'):
        set_iters(cfg, 0)


def test_set_data_root_changes_every_dataloader_or_fails():
    cfg = Config.fromfile(str(ZOO))
    changed = set_data_root(cfg, '/data/P')
    assert {'train_dataloader.dataset.data_root', 'val_dataloader.dataset.data_root',
            'test_dataloader.dataset.data_root'} <= set(changed)
    assert cfg.test_dataloader.dataset.data_root == '/data/P' and cfg.data_root == '/data/P'
    bare = Config(dict(train_dataloader=dict(dataset=dict(type='X'))))
    with pytest.raises(ValueError, match='no dataloader dataset has a data_root'):
        set_data_root(bare, '/data/P')


def test_total_batch_of_the_published_schedule_is_enforced():
    cfg = Config.fromfile(str(ZOO))
    check_total_batch(cfg, 1)  # 1 x 32
    with pytest.raises(ValueError, match=r'total batch of 32, but 4 process\(es\) x '
                                         r'train_dataloader.batch_size 32 = 128.*batch_size=8'):
        check_total_batch(cfg, 4)
    cfg.train_dataloader.batch_size = 8
    check_total_batch(cfg, 4)
    cfg.auto_scale_lr.enable = True
    check_total_batch(cfg, 2)  # accepted: mmengine scales the lr


def test_protocol_switches_and_pretrained_paths():
    cfg = Config.fromfile(str(ZOO))
    assert eval_protocol_of(cfg) == 'native'
    set_eval_protocol(cfg, 'resized')
    set_saliency_protocol(cfg, 'astmt')
    assert eval_protocol_of(cfg) == 'resized'
    assert cfg.test_evaluator.saliency_protocol == 'astmt'
    with pytest.raises(ValueError, match='must be one of'):
        set_eval_protocol(cfg, 'published')
    dropped = drop_pretrained_paths(cfg.model)
    assert dropped == ['model.backbone.checkpoint=checkpoints/swin_tiny_patch4_window7_224.pth']
    assert cfg.model.backbone.checkpoint is None
