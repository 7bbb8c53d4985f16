"""The baseline rows of a CNN backbone: decoder-only, multi-task and single-task full FT.

The conv seed methods (:class:`~mtdense.models.backbones.ConvMultiTaskBackbone` with
``ModulationAdapter`` / ``DepthwiseSharing``) always run one stream per task; their
baselines need no per-task machinery, so they get this small backbone, built from the
same timm ``features_only`` model and the same weights file::

    backbone = dict(type='TimmCNNBaseline',
                    backbone=dict(model_name='mobilenetv2_100', pretrained_path='...'),
                    mode='decoder_only')   # | 'full_ft' | 'single_task_ft'

* ``decoder_only``: frozen network, BatchNorm always with its running statistics
  (also in ``train()``), one pass, every task gets the same feature list;
* ``full_ft``: one trainable network shared by all tasks (BN in batch-statistics mode
  while training), one pass;
* ``single_task_ft``: one trainable copy per task (deep copies made after the weights
  were loaded), one pass per task.

Registered in mtdense's ``MODELS`` on import; benchmark configs import it through
``custom_imports = dict(imports=['mtdense.benchmark.conv_baselines'])``.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.models.backbones.conv_multitask import build_timm_features
from mtdense.registry import MODELS

__all__ = ['TimmCNNBaseline', 'MODES']

MODES = ('decoder_only', 'full_ft', 'single_task_ft')


@MODELS.register_module()
class TimmCNNBaseline(BaseModule):
    """A timm CNN shared by all tasks (frozen or trained) or copied per task.

    Args:
        backbone: ``dict(model_name=..., pretrained_path=None, out_indices=(1, 2, 3, 4),
            **timm_kwargs)``, as for ``ConvMultiTaskBackbone`` (no downloads: weights come
            from ``pretrained_path`` only).
        tasks: task names (filled in by ``MultiTaskDenseModel``).
        mode: one of :data:`MODES`.
    """

    def __init__(self, backbone: dict, tasks: Sequence[str], mode: str = 'decoder_only',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mode not in MODES:
            raise ValueError(f'TimmCNNBaseline: mode must be one of {MODES}, got {mode!r}')
        tasks = list(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f'TimmCNNBaseline: tasks must be non-empty and unique, got {tasks}')
        self.tasks: List[str] = tasks
        self.mode = mode
        model, self.model_name, self.checkpoint_report = build_timm_features(
            backbone, 'TimmCNNBaseline')
        self.model = model
        # copies after loading, so every task starts from the same weights
        self.copies = nn.ModuleList(
            [copy.deepcopy(model) for _ in tasks[1:]] if mode == 'single_task_ft' else [])
        trainable = mode != 'decoder_only'
        for p in self.parameters():
            p.requires_grad_(trainable)
        self.out_channels: List[int] = [int(c) for c in model.feature_info.channels()]
        if not trainable:
            self.model.eval()

    def init_weights(self) -> None:
        """Keep the pretrained weights (the Runner calls this before training)."""
        self._is_init = True

    def train(self, mode: bool = True) -> 'TimmCNNBaseline':
        """Decoder-only keeps its BatchNorms on the running statistics while training."""
        super().train(mode)
        if self.mode == 'decoder_only':
            self.model.eval()
        return self

    def _networks(self) -> List[nn.Module]:
        return [self.model] + list(self.copies)

    def forward(self, x: Tensor) -> Dict[str, List[Tensor]]:
        """``{task: [f4, f8, f16, f32]}``; shared modes hand every task the same list."""
        if x.dim() != 4:
            raise ValueError(f'TimmCNNBaseline: expected images (B, C, H, W), got '
                             f'{tuple(x.shape)}')
        if self.mode != 'single_task_ft':
            feats = list(self.model(x))
            return {t: feats for t in self.tasks}
        return {t: list(net(x)) for t, net in zip(self.tasks, self._networks())}

    def param_groups_report(self) -> dict:
        """Counts with the keys of ``ConvMultiTaskBackbone.param_groups_report`` (the
        percentage is relative to one copy of the timm model)."""
        def n(params) -> int:
            return int(sum(p.numel() for p in params))

        one = n(self.model.parameters())
        trainable = n(p for p in self.parameters() if p.requires_grad)
        per_task = ({t: n(p for p in net.parameters() if p.requires_grad)
                     for t, net in zip(self.tasks, self._networks())}
                    if self.mode == 'single_task_ft' else {t: 0 for t in self.tasks})
        return dict(
            method=f'TimmCNNBaseline({self.mode})', tasks=list(self.tasks),
            total=n(self.parameters()), trainable=trainable, backbone_total=one,
            backbone_trainable=n(p for p in self.model.parameters() if p.requires_grad),
            backbone_copies_total=n(p for c in self.copies for p in c.parameters()),
            method_total=0, method_trainable=0, method_expected=0, neck_total=0,
            neck_trainable=0, shared_trainable=trainable - sum(per_task.values()),
            per_task_trainable=per_task, per_task_owned=dict(per_task),
            trainable_percent_of_backbone=100.0 * trainable / max(one, 1))
