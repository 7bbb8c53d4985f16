"""Tiny models of the tests: a registered test backbone (``type='_TestPyramidBackbone'`` in
model configs; the import registers it: tests/models/test_multitask_model.py,
tests/tools/test_analyze_params.py) and a tiny saliency Swin model (``tiny_saliency_swin``)."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn
from mmengine.model import BaseModule

from mtdense.registry import MODELS


@MODELS.register_module(force=True)
class _TestPyramidBackbone(BaseModule):
    """Conv pyramid (strides 4, 8, 16, 32) that gives every task the same feature list.

    Stage ``i`` is a 3x3 conv (with bias), followed by a ReLU when ``relu``; with
    ``frozen_stem`` the first stage's parameters do not train.
    """

    def __init__(self, tasks: Sequence[str], channels: Sequence[int] = (8, 16, 32, 64),
                 relu: bool = True, frozen_stem: bool = False) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.out_channels = list(channels)
        layers, prev = [], 3
        for i, c in enumerate(channels):
            conv = nn.Conv2d(prev, c, 3, stride=4 if i == 0 else 2, padding=1)
            layers.append(nn.Sequential(conv, nn.ReLU()) if relu else conv)
            prev = c
        self.stages = nn.ModuleList(layers)
        if frozen_stem:
            for p in self.stages[0].parameters():
                p.requires_grad_(False)

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return {t: feats for t in self.tasks}


def tiny_saliency_swin(**head):
    """A real ``MultiTaskDenseModel``: saliency only, an 8-wide one-block-per-stage mmseg Swin
    (window 2, DecoderOnly) and a LightMultiScaleHead; ``head``: more head arguments."""
    from mtdense.utils import register_all_modules
    register_all_modules()
    return MODELS.build(dict(
        type='MultiTaskDenseModel', tasks=['saliency'],
        backbone=dict(type='AdaptedBackbone', backbone=dict(
            type='MMSegSwin', embed_dims=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
            window_size=2), peft=dict(type='DecoderOnly')),
        heads=dict(type='LightMultiScaleHead', channels=8, **head)))
