"""The default light multi-scale task head, and its one parameterisation.

The head's maths lives here once. Its parameters are those of the plain layout
(:meth:`LightMultiScaleHead.forward_plain`: reducers, upsample, concat, 1x1
conv-BN-ReLU, dropout, predictor); the functions below derive from them the
affine maps the fast forms run, over T heads stacked along a leading axis:

* :func:`fused_affine`: the fusion conv ``(T, ch, L * ch)`` and bias, with the
  eval-mode BN folded in (the one implementation of the fold);
* :func:`level_factors`: level l's fusion slice ``F_l`` and reducer ``R_l``, b_l;
* :func:`compose_level`: their product ``F_l R_l`` and bias ``F_l b_l`` (+ the
  fusion bias at level 0);
* :func:`stacked_level_weights`: all levels composed; :func:`composed_weights_key`
  names the tensors they are made of.

:meth:`LightMultiScaleHead.level_weights` (the reassociated per-head forward) is
their T = 1 case; :func:`~mtdense.models.heads.task_batched.task_batched_heads_forward`
runs T heads with the same functions.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

__all__ = ['LightMultiScaleHead', 'check_pyramid', 'composed_weights_key', 'compose_level',
           'fused_affine', 'level_factors', 'stacked_level_weights']


def check_pyramid(name: str, feats: Sequence[Tensor], in_channels: Sequence[int]) -> None:
    """Raise a clear error if ``feats`` does not match the declared ``in_channels``."""
    if not isinstance(feats, (list, tuple)):
        raise TypeError(f'{name}: expected a list of feature maps, got {type(feats).__name__}')
    if len(feats) != len(in_channels):
        raise ValueError(f'{name}: expected {len(in_channels)} feature levels, got {len(feats)}')
    for i, (f, c) in enumerate(zip(feats, in_channels)):
        if f.dim() != 4 or f.shape[1] != c:
            raise ValueError(f'{name}: level {i} should be (B, {c}, H, W), got {tuple(f.shape)}')


def _stack(tensors: Sequence[Tensor]) -> Tensor:
    """``torch.stack``; for one tensor a view with a leading axis of 1 (same values,
    no copy)."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def fused_affine(heads: Sequence[LightMultiScaleHead]) -> Tuple[Tensor, Optional[Tensor], bool]:
    """The heads' fusion 1x1 conv as one stacked affine map: weights ``(T, ch, L * ch)`` and
    bias ``(T, ch)`` (None without one), with the BN folded in when the heads fold it
    (:meth:`LightMultiScaleHead.folds_norm`: eval mode, running statistics); and whether
    it was folded. ``heads`` share one layout (:func:`can_batch_heads`, or one head)."""
    ref = heads[0]
    folded = ref.folds_norm()
    if any(h.folds_norm() != folded for h in heads):
        raise RuntimeError('LightMultiScaleHead: heads differ in train/eval mode')
    fuse_w = _stack([h.fuse.conv.weight.flatten(1) for h in heads])  # (T, ch, L * ch)
    has_fuse_b = ref.fuse.conv.bias is not None
    fuse_b = _stack([h.fuse.conv.bias for h in heads]) if has_fuse_b else None
    if folded:
        norms = [h.fuse.norm for h in heads]
        eps, affine = norms[0].eps, norms[0].affine
        if any(n.eps != eps or n.affine != affine for n in norms):
            raise ValueError('LightMultiScaleHead: heads differ in their BN settings')
        var = _stack([n.running_var for n in norms])
        # BN(z) = (z - mean) * scale + shift with scale = gamma / sqrt(var + eps)
        scale = _stack([n.weight for n in norms]) / torch.sqrt(var + eps) if affine else \
            torch.rsqrt(var + eps)
        shift = -_stack([n.running_mean for n in norms]) * scale
        if affine:
            shift = shift + _stack([n.bias for n in norms])
        fuse_w = fuse_w * scale[:, :, None]
        fuse_b = shift if fuse_b is None else fuse_b * scale + shift
    return fuse_w, fuse_b, folded


LevelFactors = Tuple[Tensor, Tensor, Optional[Tensor]]


def level_factors(heads: Sequence[LightMultiScaleHead], fuse_w: Tensor, lvl: int) -> LevelFactors:
    """Level ``lvl``'s fusion slice ``F_l`` (T, ch, ch) of ``fuse_w`` (from
    :func:`fused_affine`), reducer weights ``R_l`` (T, ch, C_l) and reducer biases
    (T, ch) (None without)."""
    ch = heads[0].channels
    f_l = fuse_w[:, :, lvl * ch:(lvl + 1) * ch]
    r_w = _stack([h.reducers[lvl].weight.flatten(1) for h in heads])
    has_b = heads[0].reducers[lvl].bias is not None
    r_b = _stack([h.reducers[lvl].bias for h in heads]) if has_b else None
    return f_l, r_w, r_b


def compose_level(factors: LevelFactors, fuse_b: Optional[Tensor], lvl: int,
                  batched: bool = True) -> Tuple[Tensor, Tensor]:
    """Level ``lvl``'s composed weights ``F_l R_l`` (T, ch, C_l) and bias ``F_l b_l``
    (T, ch); the fusion bias ``fuse_b`` goes into level 0's.

    ``batched``: the weights as one ``bmm`` over the T heads (the task-batched path,
    whatever T), else one 2-D product per head (a head on its own); the two round
    differently at small widths, even for T = 1."""
    f_l, r_w, r_b = factors
    num = f_l.shape[0]
    w = torch.bmm(f_l, r_w) if batched else _stack([f_l[t] @ r_w[t] for t in range(num)])
    if r_b is not None:
        # per head: a batched product rounds differently from mv
        b = _stack([f_l[t] @ r_b[t] for t in range(num)])
    else:
        b = f_l.new_zeros(f_l.shape[:2])
    if lvl == 0 and fuse_b is not None:
        b = b + fuse_b
    return w, b


def stacked_level_weights(heads: Sequence[LightMultiScaleHead], batched: bool = True
                          ) -> Tuple[List[Tuple[Tensor, Tensor]], bool]:
    """Per level, the heads' composed (fusion o reducer) weights ``(T, ch, C_l)`` and biases
    ``(T, ch)`` (``batched``: see :func:`compose_level`); and whether the BN is folded in
    (:func:`fused_affine`)."""
    fuse_w, fuse_b, folded = fused_affine(heads)
    return [compose_level(level_factors(heads, fuse_w, lvl), fuse_b, lvl, batched)
            for lvl in range(len(heads[0].in_channels))], folded


def composed_weights_key(heads: Sequence[LightMultiScaleHead]) -> Tuple:
    """Identity and version of every tensor :func:`stacked_level_weights` reads: equal keys
    mean equal weights (an optimiser step or ``load_state_dict`` bumps the versions)."""
    key = []
    for h in heads:
        key.append((h.training, h.folds_norm()))
        tensors = [*h.fuse.conv.parameters(), *h.reducers.parameters()]
        if h.fuse.with_norm:
            n = h.fuse.norm
            tensors += [n.weight, n.bias, n.running_mean, n.running_var]
        key.extend((t.data_ptr(), t._version, t.dtype) for t in tensors if t is not None)
    return tuple(key)


@MODELS.register_module()
class LightMultiScaleHead(BaseModule):
    """Fuse a feature pyramid at the finest level and predict ``out_channels`` maps.

    Each level is reduced by a 1x1 conv to ``channels``, upsampled (bilinear) to
    the first level's size (stride 4), concatenated, and decoded by
    1x1 conv-BN-ReLU followed by a 1x1 conv to ``out_channels``. This is the
    cheap default head: its cost is a handful of 1x1 convs per task, so the
    per-task cost of the model stays dominated by the shared backbone.

    :meth:`forward_plain` computes exactly that; :meth:`forward` computes it in an
    equivalent, cheaper order: reducer and fusion conv are both
    linear and bilinear upsampling commutes with a 1x1 conv (its weights sum to
    one, so biases pass through), hence
    ``fuse(cat_l up(R_l f_l)) = sum_l up((F_l R_l) f_l + F_l b_l)`` with F_l the
    fusion weights of level l. Each level is projected once at its own
    resolution and no (4 * channels)-wide map is built at stride 4. In eval mode
    the BN is folded into those weights too. The parameters are those of the
    plain layout (``reducers``, ``fuse``, ``predictor``), so checkpoints are the
    same. The composed weights come from the module-level functions above
    (:meth:`level_weights` is their one-head case), which
    :func:`task_batched_heads_forward` uses to run several such heads as single ops
    over tasks.

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

    def forward_plain(self, feats: List[Tensor]) -> Tensor:
        """The literal layout: reducers, upsampling, concatenation, fusion ConvModule,
        dropout, predictor (the reference :meth:`forward` is equal to)."""
        check_pyramid(type(self).__name__, feats, self.in_channels)
        size = feats[0].shape[2:]
        xs = []
        for f, reducer in zip(feats, self.reducers):
            x = reducer(f)
            if x.shape[2:] != size:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=self.align_corners)
            xs.append(x)
        return self.predictor(self.dropout(self.fuse(torch.cat(xs, dim=1))))

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
        them and whether the BN is folded in (see :meth:`folds_norm`): the one-head case
        of :func:`stacked_level_weights`."""
        levels, folded = stacked_level_weights([self], batched=False)
        return [(w[0], b[0]) for w, b in levels], folded
