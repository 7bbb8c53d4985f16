"""The default light multi-scale task head, and its one parameterisation.

The head's maths lives here once. Its parameters are those of the plain layout
(:meth:`LightMultiScaleHead.forward_plain`: reducers, upsample, concat, 1x1
conv-BN-ReLU, dropout, predictor); the functions below derive from them the
affine maps the fast forms run, for one head (its own tensors) or for T heads
(their tensors stacked on a leading axis), with the same ops:

* :func:`fused_affine`: the fusion conv ``([T,] ch, L * ch)`` and bias, with the
  eval-mode BN folded in (the one implementation of the fold);
* :func:`level_factors`: level l's fusion slice ``F_l`` and reducer ``R_l``, b_l;
* :func:`compose_level`: their product ``F_l R_l`` and bias ``F_l b_l`` (+ the
  fusion bias at level 0);
* :func:`composed_weights`: all levels composed; :func:`composed_weights_key`
  names the tensors they are made of.

:meth:`LightMultiScaleHead.level_weights` (the reassociated per-head forward) is
their one-head case; :func:`~mtdense.models.heads.task_batched.task_batched_heads_forward`
runs T heads with the same functions.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

__all__ = ['LightMultiScaleHead', 'check_pyramid', 'compose_level', 'composed_weights',
           'composed_weights_key', 'fused_affine', 'level_factors']


def check_pyramid(name: str, feats: Sequence[Tensor], in_channels: Sequence[int]) -> None:
    """Raise a clear error if ``feats`` does not match the declared ``in_channels``."""
    if not isinstance(feats, (list, tuple)):
        raise TypeError(f'{name}: expected a list of feature maps, got {type(feats).__name__}')
    if len(feats) != len(in_channels):
        raise ValueError(f'{name}: expected {len(in_channels)} feature levels, got {len(feats)}')
    for i, (f, c) in enumerate(zip(feats, in_channels)):
        if f.dim() != 4 or f.shape[1] != c:
            raise ValueError(f'{name}: level {i} should be (B, {c}, H, W), got {tuple(f.shape)}')


Heads = Union['LightMultiScaleHead', Sequence['LightMultiScaleHead']]
LevelFactors = Tuple[Tensor, Tensor, Optional[Tensor]]


def _group(heads: Heads) -> Tuple[List['LightMultiScaleHead'], bool]:
    """``heads`` as a list, and whether it was one head."""
    one = isinstance(heads, LightMultiScaleHead)
    return ([heads] if one else list(heads)), one


def _join(tensors: List[Tensor], one: bool) -> Tensor:
    """One head's tensor as it is; T heads' stacked on a leading axis."""
    return tensors[0] if one else torch.stack(tensors)


def fused_affine(heads: Heads) -> Tuple[Tensor, Optional[Tensor], bool]:
    """The fusion 1x1 conv as an affine map: weights ``([T,] ch, L * ch)`` and bias
    ``([T,] ch)`` (None without one), with the BN folded in when the heads fold it
    (:meth:`LightMultiScaleHead.folds_norm`: eval mode, running statistics); and whether
    it was folded. ``heads``: one head (its own tensors) or T heads of one layout
    (:func:`can_batch_heads`), stacked task-major; the same ops in both cases."""
    group, one = _group(heads)
    folded = group[0].folds_norm()
    if not one and any(h.folds_norm() != folded for h in group):
        raise RuntimeError('LightMultiScaleHead: heads differ in train/eval mode')
    convs = [h.fuse.conv for h in group]
    fuse_w = _join([c.weight.flatten(1) for c in convs], one)
    fuse_b = _join([c.bias for c in convs], one) if convs[0].bias is not None else None
    if folded:
        norms = [h.fuse.norm for h in group]
        eps, affine = norms[0].eps, norms[0].affine
        if not one and any(n.eps != eps or n.affine != affine for n in norms):
            raise ValueError('LightMultiScaleHead: heads differ in their BN settings')
        var = _join([n.running_var for n in norms], one)
        # BN(z) = z * scale + shift, scale = gamma / sqrt(var + eps), shift = beta - mean * scale
        scale = _join([n.weight for n in norms], one) / torch.sqrt(var + eps) if affine else \
            torch.rsqrt(var + eps)
        shift = -_join([n.running_mean for n in norms], one) * scale
        if affine:
            shift = shift + _join([n.bias for n in norms], one)
        fuse_w = fuse_w * scale[..., None]
        fuse_b = shift if fuse_b is None else fuse_b * scale + shift
    return fuse_w, fuse_b, folded


def level_factors(heads: Heads, fuse_w: Tensor, lvl: int) -> LevelFactors:
    """Level ``lvl``'s fusion slice ``F_l`` ``([T,] ch, ch)`` of ``fuse_w`` (from
    :func:`fused_affine`), reducer weights ``R_l`` ``([T,] ch, C_l)`` and reducer biases
    ``([T,] ch)`` (None without)."""
    group, one = _group(heads)
    ch = group[0].channels
    f_l = fuse_w[..., lvl * ch:(lvl + 1) * ch]
    reducers = [h.reducers[lvl] for h in group]
    r_w = _join([r.weight.flatten(1) for r in reducers], one)
    r_b = _join([r.bias for r in reducers], one) if reducers[0].bias is not None else None
    return f_l, r_w, r_b


def compose_level(factors: LevelFactors, fuse_b: Optional[Tensor], lvl: int
                  ) -> Tuple[Tensor, Tensor]:
    """Level ``lvl``'s composed weights ``F_l R_l`` ``([T,] ch, C_l)`` and bias ``F_l b_l``
    ``([T,] ch)``; the fusion bias ``fuse_b`` goes into level 0's. Stacked factors: one
    batched product for the weights (``bmm``; ``matmul`` adds view ops around it)."""
    f_l, r_w, r_b = factors
    w = torch.bmm(f_l, r_w) if f_l.dim() == 3 else f_l @ r_w
    if r_b is None:
        b = f_l.new_zeros(f_l.shape[:-1])
    elif f_l.dim() == 2:
        b = f_l @ r_b
    else:  # per head: a batched product rounds differently from mv
        b = torch.stack([f_l[t] @ r_b[t] for t in range(f_l.shape[0])])
    if lvl == 0 and fuse_b is not None:
        b = b + fuse_b
    return w, b


def composed_weights(heads: Heads) -> Tuple[List[Tuple[Tensor, Tensor]], bool]:
    """Per level, the composed (fusion o reducer) weights ``([T,] ch, C_l)`` and biases
    ``([T,] ch)`` (:func:`compose_level`); and whether the BN is folded in
    (:func:`fused_affine`)."""
    fuse_w, fuse_b, folded = fused_affine(heads)
    return [compose_level(level_factors(heads, fuse_w, lvl), fuse_b, lvl)
            for lvl in range(len(_group(heads)[0][0].in_channels))], folded


def composed_weights_key(heads: Heads) -> Tuple:
    """Identity and version of every tensor :func:`composed_weights` reads: equal keys mean
    equal weights (an optimiser step or ``load_state_dict`` bumps the versions)."""
    key = []
    for h in _group(heads)[0]:
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
        of :func:`composed_weights` (the functions of T stacked heads, on this head's own
        tensors)."""
        return composed_weights(self)
