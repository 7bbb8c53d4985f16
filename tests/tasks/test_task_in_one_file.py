"""A task of one's own is one file: defined here alone, it trains and evaluates end to end.

``flow2d`` is a 2-channel optical-flow-like regression: its definition (below) says how its
ground truth is stored (``<data_root>/flow2d/<id>.npy``), resampled (valid-aware, not unit,
a horizontal flip negates x), packed, predicted, scored (end-point error) and drawn. No
other mtdense file knows it: the dataset, transforms, preprocessor, model, metric and
visualiser ask the definition.
"""
import os

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from mtdense.registry import MODELS
from mtdense.tasks import VectorTask, register_task


class EPEStats:
    """Mean end-point error over valid pixels (additive: sum and count)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, pred, gt):
        pred, gt = np.asarray(pred), np.asarray(gt)  # (2, H, W)
        valid = np.any(gt != 0, axis=0)
        self.total += float(np.linalg.norm(pred - gt, axis=0)[valid].sum())
        self.count += int(valid.sum())

    def state_dict(self):
        return dict(total=self.total, count=self.count)

    def add_state(self, state):
        self.total += state['total']
        self.count += state['count']
        return self

    def compute(self):
        return {'epe': self.total / max(self.count, 1)}


@MODELS.register_module(force=True)
class MaskedFlowL1(nn.Module):
    def forward(self, pred, target):
        valid = (target != 0).any(dim=1, keepdim=True).float()
        return ((pred - target).abs() * valid).sum() / valid.sum().clamp(min=1)


@register_task
class Flow2D(VectorTask):
    name = 'flow2d'
    kind = 'flow'
    num_channels = 2
    gt_channels = 2
    unit = False
    primary_metric = 'epe'
    higher_is_better = False
    default_loss = dict(type='MaskedFlowL1')
    default_loss_weight = 1.0
    default_layout = ('flow2d', '.npy', 'npy')

    def new_stats(self, factories, options):
        return EPEStats()

    def update_stats(self, stats, pred, gt):
        stats.update(pred, gt)

    def colorize(self, data, colorizers, options):
        arr = np.asarray(data.detach().cpu() if hasattr(data, 'detach') else data, np.float32)
        arr = arr.transpose(1, 2, 0) if arr.shape[0] == 2 else arr
        rgb = np.zeros(arr.shape[:2] + (3,), np.uint8)
        rgb[..., :2] = np.clip(arr * 40 + 128, 0, 255)
        return rgb


def test_new_task_trains_and_evaluates(tmp_path):
    from mtdense.datasets.synthetic import SyntheticDatasetWriter
    from mtdense.engine.runner import build_runner
    from mtdense.utils import register_all_modules
    register_all_modules()
    root = str(tmp_path / 'data')
    SyntheticDatasetWriter(root, 6, 48, 64, seed=4, val_fraction=0.34).run()
    os.makedirs(os.path.join(root, 'flow2d'))
    rng = np.random.default_rng(0)
    for i in range(6):  # a smooth field, zero (invalid) on the first row
        yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
        flow = np.stack([np.sin(xx / 9 + i), np.cos(yy / 7)], -1) + rng.normal(0, .01, (48, 64, 2))
        flow[0] = 0
        np.save(os.path.join(root, 'flow2d', f'{i:06d}.npy'), flow.astype(np.float32))
    cfg = Config.fromfile(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'configs',
                                       'tests', 'tiny_vmt_synthetic.py'))
    tasks = ['semseg', 'flow2d']
    cfg.model.tasks = tasks
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(data_root=root, tasks=tasks)
    for key in ('val_evaluator', 'test_evaluator'):
        cfg[key].tasks = tasks
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.default_hooks.checkpoint.interval = 3
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    model = runner.model
    assert model.heads['flow2d'].predictor.out_channels == 2  # from the definition
    runner.train()
    metrics = runner.val_loop.run()
    assert set(metrics) >= {'semseg/mIoU', 'flow2d/epe'} and np.isfinite(metrics['flow2d/epe'])
    # the pipeline carried the flow through crop / flip / pad consistently
    batch = next(iter(runner.train_dataloader))
    gt = batch['data_samples'][0].gt_flow2d.data
    assert gt.shape[0] == 2 and gt.dtype == torch.float32
    # and a panel draws it
    from mtdense.visualization import MultiTaskVisualizer
    from mmengine.dataset import pseudo_collate
    sample = runner.model.test_step(pseudo_collate([runner.val_dataloader.dataset[0]]))[0]
    panel = MultiTaskVisualizer(name='flow_panel').draw_datasample(None, sample)
    assert panel.ndim == 3 and panel.dtype == np.uint8
