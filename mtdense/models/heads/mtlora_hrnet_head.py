"""The task decoder of the official MTLoRA model: a per-task "downsampler" and an
HRNet-style head (scale-lab/MTLoRA ``models/swin_mtl.py`` ``Downsampler`` and
``models/seg_hrnet.py`` ``HighResolutionHead``)."""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

from .light_head import check_pyramid

__all__ = ['MTLoRAHRNetHead']


@MODELS.register_module()
class MTLoRAHRNetHead(BaseModule):
    """Per-level 1x1 reduction, then HRNet-style fusion at the first level's size.

    For a pyramid ``f_0..f_3`` (MTLoRA: Swin-T stage outputs after patch merging,
    192/384/768/768 channels)::

        g_l = D_l f_l                            # 1x1 conv, no bias ("downsampler")
        u   = cat(g_0, up(g_1), up(g_2), up(g_3))  # bilinear to f_0's size, sum(channels)
        out = P relu(BN(F u + b_F)) + b_P        # 1x1 convs: sum -> 4 * sum -> out_channels

    With the official channels (18, 36, 72, 144) the fused width is 270 and the hidden
    width 1080; one head has 500,709 parameters for 21 outputs, as the official model.
    The model resizes the output to the input size (bilinear), as the official
    ``DecoderGroup`` does.

    Args:
        in_channels: channels of each pyramid level.
        out_channels: prediction channels of the task.
        channels: width of each level after its reduction (one per level, or one int
            for all levels).
        norm_cfg: norm of the fusion layer (official: BatchNorm, momentum 0.1).
        align_corners: of the upsampling (official: False).
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int,
                 channels: Union[int, Sequence[int]] = (18, 36, 72, 144),
                 norm_cfg: dict = dict(type='BN'), align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        if isinstance(channels, int):
            channels = [channels] * len(in_channels)
        channels = [int(c) for c in channels]
        if len(channels) != len(in_channels):
            raise ValueError(f'MTLoRAHRNetHead: channels={channels} needs one entry per pyramid '
                             f'level ({len(in_channels)} levels: in_channels={in_channels})')
        if any(c <= 0 for c in in_channels + channels) or int(out_channels) <= 0:
            raise ValueError(f'MTLoRAHRNetHead: in_channels={in_channels}, channels={channels} and '
                             f'out_channels={out_channels} must be positive')
        self.in_channels: List[int] = in_channels
        self.channels: List[int] = channels
        self.out_channels = int(out_channels)
        self.align_corners = bool(align_corners)
        fused = sum(channels)
        self.reducers = nn.ModuleList(
            nn.Conv2d(c_in, c, kernel_size=1, bias=False) for c_in, c in zip(in_channels, channels))
        # the official fusion conv keeps its bias in front of the BN
        self.fuse = nn.Conv2d(fused, 4 * fused, kernel_size=1)
        self.norm = build_norm_layer(norm_cfg, 4 * fused)[1]
        self.act = nn.ReLU()
        self.predictor = nn.Conv2d(4 * fused, self.out_channels, kernel_size=1)

    def forward(self, feats: List[Tensor]) -> Tensor:
        check_pyramid(type(self).__name__, feats, self.in_channels)
        levels = [r(f) for r, f in zip(self.reducers, feats)]
        size = levels[0].shape[2:]
        levels = [levels[0]] + [
            F.interpolate(g, size=size, mode='bilinear', align_corners=self.align_corners)
            for g in levels[1:]
        ]
        x = self.act(self.norm(self.fuse(torch.cat(levels, dim=1))))
        return self.predictor(x)
