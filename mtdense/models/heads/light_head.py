"""The default light multi-scale task head."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

__all__ = ['LightMultiScaleHead', 'check_pyramid']


def check_pyramid(name: str, feats: Sequence[Tensor], in_channels: Sequence[int]) -> None:
    """Raise a clear error if ``feats`` does not match the declared ``in_channels``."""
    if not isinstance(feats, (list, tuple)):
        raise TypeError(f'{name}: expected a list of feature maps, got {type(feats).__name__}')
    if len(feats) != len(in_channels):
        raise ValueError(f'{name}: expected {len(in_channels)} feature levels, got {len(feats)}')
    for i, (f, c) in enumerate(zip(feats, in_channels)):
        if f.dim() != 4 or f.shape[1] != c:
            raise ValueError(f'{name}: level {i} should be (B, {c}, H, W), got {tuple(f.shape)}')


@MODELS.register_module()
class LightMultiScaleHead(BaseModule):
    """Fuse a feature pyramid at the finest level and predict ``out_channels`` maps.

    Each level is reduced by a 1x1 conv to ``channels``, upsampled (bilinear) to
    the first level's size (stride 4), concatenated, and decoded by
    1x1 conv-BN-ReLU followed by a 1x1 conv to ``out_channels``. This is the
    cheap default head: its cost is a handful of 1x1 convs per task, so the
    per-task cost of the model stays dominated by the shared backbone.

    Args:
        in_channels: channels of each pyramid level (the backbone's ``out_channels``).
        out_channels: prediction channels of the task.
        channels: width of the reducers and of the fusion layer.
        norm_cfg: norm of the fusion layer.
        act_cfg: activation of the fusion layer.
        dropout_ratio: dropout before the last conv (0 disables it).
        align_corners: of the upsampling.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, channels: int = 64,
                 norm_cfg: Optional[dict] = dict(type='BN'), act_cfg: Optional[dict] = dict(type='ReLU'),
                 dropout_ratio: float = 0.0, align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        if not in_channels or any(c <= 0 for c in in_channels):
            raise ValueError(f'LightMultiScaleHead: in_channels must be positive ints, got {in_channels}')
        if int(out_channels) <= 0 or int(channels) <= 0:
            raise ValueError(f'LightMultiScaleHead: out_channels ({out_channels}) and channels '
                             f'({channels}) must be positive')
        self.in_channels: List[int] = in_channels
        self.out_channels = int(out_channels)
        self.channels = int(channels)
        self.align_corners = align_corners
        self.reducers = nn.ModuleList(
            nn.Conv2d(c, self.channels, kernel_size=1) for c in in_channels)
        self.fuse = ConvModule(self.channels * len(in_channels), self.channels, kernel_size=1,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.predictor = nn.Conv2d(self.channels, self.out_channels, kernel_size=1)

    def forward(self, feats: List[Tensor]) -> Tensor:
        check_pyramid(type(self).__name__, feats, self.in_channels)
        size = feats[0].shape[2:]
        reduced = []
        for f, reducer in zip(feats, self.reducers):
            x = reducer(f)
            if x.shape[2:] != size:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)
            reduced.append(x)
        x = self.fuse(torch.cat(reduced, dim=1))
        return self.predictor(self.dropout(x))
