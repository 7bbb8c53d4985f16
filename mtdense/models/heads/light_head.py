"""The default light multi-scale task head."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

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

    Computed in an equivalent, cheaper order: reducer and fusion conv are both
    linear and bilinear upsampling commutes with a 1x1 conv (its weights sum to
    one, so biases pass through), hence
    ``fuse(cat_l up(R_l f_l)) = sum_l up((F_l R_l) f_l + F_l b_l)`` with F_l the
    fusion weights of level l. Each level is projected once at its own
    resolution and no (4 * channels)-wide map is built at stride 4. In eval mode
    the BN is folded into those weights too. The parameters are those of the
    plain layout (``reducers``, ``fuse``, ``predictor``), so checkpoints are the
    same. :func:`task_batched_heads_forward` runs several such heads as single
    ops over tasks.

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
        if tuple(self.fuse.order) != ('conv', 'norm', 'act'):  # pragma: no cover - built above
            raise RuntimeError('LightMultiScaleHead: unexpected ConvModule order')

    def forward(self, feats: List[Tensor]) -> Tensor:
        check_pyramid(type(self).__name__, feats, self.in_channels)
        size = feats[0].shape[2:]
        weights, folded = self.level_weights()
        acc = None
        for f, (w, b) in zip(feats, weights):
            x = F.conv2d(f, w[:, :, None, None], b)
            if x.shape[2:] != size:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)
            acc = x if acc is None else acc + x
        if not folded and self.fuse.with_norm:
            acc = self.fuse.norm(acc)
        if self.fuse.with_activation:
            acc = self.fuse.activate(acc)
        return self.predictor(self.dropout(acc))

    def folds_norm(self) -> bool:
        """Whether the fusion BN is folded into the level weights (eval, running stats)."""
        norm = self.fuse.norm if self.fuse.with_norm else None
        return (norm is not None and not self.training and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats and norm.running_mean is not None)

    def level_weights(self) -> Tuple[List[Tuple[Tensor, Tensor]], bool]:
        """Per level, the composed (fusion o reducer) 1x1 weights ``(channels, C_l)`` and
        bias ``(channels,)``; the fusion conv's own bias is in level 0's. Returns
        them and whether the BN is folded in (see :meth:`folds_norm`)."""
        ch = self.channels
        fuse_w = self.fuse.conv.weight.flatten(1)  # (ch, L * ch)
        fuse_b = self.fuse.conv.bias
        folded = self.folds_norm()
        if folded:
            bn = self.fuse.norm
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
                torch.rsqrt(bn.running_var + bn.eps)
            shift = -bn.running_mean * scale
            if bn.affine:
                shift = shift + bn.bias
            fuse_w = fuse_w * scale[:, None]
            fuse_b = shift if fuse_b is None else fuse_b * scale + shift
        out = []
        for lvl, reducer in enumerate(self.reducers):
            f_l = fuse_w[:, lvl * ch:(lvl + 1) * ch]
            w = f_l @ reducer.weight.flatten(1)
            b = f_l @ reducer.bias if reducer.bias is not None else f_l.new_zeros(ch)
            if lvl == 0 and fuse_b is not None:
                b = b + fuse_b
            out.append((w, b))
        return out, folded
