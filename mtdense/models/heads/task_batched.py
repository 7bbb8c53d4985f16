"""Run T ``LightMultiScaleHead`` s as single ops over tasks.

VMT-style backbones hand every task its own pyramid, stacked task-major along the
batch: level l is ``(T * B, C_l, h_l, w_l)`` (or ``(B, C_l, h_l, w_l)`` when the
level is shared by all tasks). Instead of T head calls, each level is projected
with one batched product against the T heads' stacked (fusion o reducer)
weights, upsampled with one interpolation for all tasks, and normalised with
per-task batch statistics in one pass; only the last 1x1 predictor, whose width
differs per task, is applied per task. The arithmetic is that of
``LightMultiScaleHead.forward`` (same weights, same order of operations per
task), so the two agree to float rounding; BN running statistics are updated as
``nn.BatchNorm2d`` would.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .light_head import LightMultiScaleHead

__all__ = ['can_batch_heads', 'task_batched_heads_forward']


def _plain_bn(norm: nn.Module) -> bool:
    # SyncBatchNorm / GroupNorm etc. are left to the per-task path (their statistics
    # are not per-(task, channel) over the local batch).
    return (type(norm) is nn.BatchNorm2d and norm.affine and norm.track_running_stats
            and norm.momentum is not None)


def can_batch_heads(heads: Sequence[nn.Module]) -> bool:
    """True if ``heads`` are identical-layout ``LightMultiScaleHead`` s with a plain BN
    (or no norm) and a ReLU (or no activation): the batched path applies."""
    if not heads or any(type(h) is not LightMultiScaleHead for h in heads):
        return False
    ref = heads[0]
    for h in heads:
        if (h.in_channels != ref.in_channels or h.channels != ref.channels
                or h.align_corners != ref.align_corners
                or h.fuse.with_norm != ref.fuse.with_norm
                or h.fuse.with_activation != ref.fuse.with_activation
                or type(h.dropout) is not type(ref.dropout)
                or getattr(h.dropout, 'p', 0) != getattr(ref.dropout, 'p', 0)):
            return False
        if h.fuse.with_norm:
            n, r = h.fuse.norm, ref.fuse.norm
            if not _plain_bn(n) or n.eps != r.eps or n.momentum != r.momentum:
                return False
        # other activations may carry parameters or settings
        if h.fuse.with_activation and type(h.fuse.activate) is not nn.ReLU:
            return False
    return True


def _per_task_batch_norm(x: Tensor, heads: Sequence[LightMultiScaleHead]) -> Tensor:
    """Training-mode BN with statistics per (task, channel) over (B, H, W).

    ``x``: (T, B*H*W, C) tokens. Updates every head's running statistics exactly as
    ``nn.BatchNorm2d`` does (momentum, unbiased running variance).
    """
    norms = [h.fuse.norm for h in heads]
    count = x.shape[1]
    if count <= 1:
        raise ValueError('LightMultiScaleHead: BatchNorm needs more than 1 value per channel in '
                         f'training, got {count} per task')
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # statistics and normalisation in fp32, as autocast runs batch_norm
    var, mean = torch.var_mean(x, dim=1, unbiased=False)  # (T, C)
    weight = torch.stack([n.weight for n in norms])
    bias = torch.stack([n.bias for n in norms])
    scale = weight * torch.rsqrt(var + norms[0].eps)
    shift = bias - mean * scale
    with torch.no_grad():
        unbiased = var * (count / (count - 1))
        for t, n in enumerate(norms):
            n.num_batches_tracked.add_(1)
            m = n.momentum
            n.running_mean.mul_(1 - m).add_(mean[t].detach(), alpha=m)
            n.running_var.mul_(1 - m).add_(unbiased[t].detach(), alpha=m)
    return x * scale[:, None, :] + shift[:, None, :]


def _tokens(f: Tensor, lead: int) -> Tensor:
    """(N, C, h, w) -> (lead, N / lead * h * w, C); free for channels-last strides."""
    return f.permute(0, 2, 3, 1).reshape(lead, -1, f.shape[1])


def _maps(tokens: Tensor, n: int, h: int, w: int) -> Tensor:
    """(lead, n / lead * h * w, C) -> (n, C, h, w) view with channels-last strides."""
    return tokens.reshape(n, h, w, tokens.shape[-1]).permute(0, 3, 1, 2)


def task_batched_heads_forward(heads: Sequence[LightMultiScaleHead], feats: Sequence[Tensor],
                               stacked: Sequence[bool], batch_size: int) -> List[Tensor]:
    """Outputs of ``heads[t](pyramid of task t)`` for every t, at stride 4.

    Works on channel-last tokens: a stacked level is ``(T, B*h*w, C)`` (free when
    the backbone hands out channels-last maps, as the Swin hosts do), each level
    projection is one ``baddbmm`` over tasks, and the bilinear upsampling runs on
    channels-last maps (several times faster on CPU than on NCHW-contiguous ones).

    Args:
        heads: T heads accepted by :func:`can_batch_heads`, in task order.
        feats: per level, ``(T * B, C, h, w)`` task-major if ``stacked[l]``, else
            ``(B, C, h, w)`` shared by all tasks.
        stacked: see ``feats``.
        batch_size: B.

    Returns:
        per task ``(B, out_channels_t, h_0, w_0)`` (channels-last strides).
    """
    num_tasks, ref = len(heads), heads[0]
    if len(feats) != len(ref.in_channels) or len(stacked) != len(feats):
        raise ValueError(f'task_batched_heads_forward: expected {len(ref.in_channels)} levels and '
                         f'as many flags, got {len(feats)} levels and {len(stacked)} flags')
    B, ch, T = batch_size, ref.channels, num_tasks
    level_weights, folded = zip(*(h.level_weights() for h in heads))
    folded = folded[0]  # same train/eval mode and norm type for all heads (can_batch_heads)
    h0, w0 = (int(s) for s in feats[0].shape[2:])
    acc = None
    for lvl, (f, is_stacked) in enumerate(zip(feats, stacked)):
        c_in, h, w = f.shape[1:]
        if c_in != ref.in_channels[lvl]:
            raise ValueError(f'LightMultiScaleHead: level {lvl} should have {ref.in_channels[lvl]} '
                             f'channels, got {tuple(f.shape)}')
        weight = torch.stack([lw[lvl][0] for lw in level_weights])  # (T, ch, C)
        bias = torch.stack([lw[lvl][1] for lw in level_weights])  # (T, ch)
        if is_stacked:
            if f.shape[0] != T * B:
                raise ValueError(f'task_batched_heads_forward: stacked level {lvl} has batch '
                                 f'{f.shape[0]}, expected {T} tasks x {B}')
            # (T, B*hw, C) @ (T, C, ch) + b_t -> (T, B*hw, ch)
            y = torch.baddbmm(bias.unsqueeze(1), _tokens(f, T), weight.transpose(1, 2))
        else:
            if f.shape[0] != B:
                raise ValueError(f'task_batched_heads_forward: shared level {lvl} has batch '
                                 f'{f.shape[0]}, expected {B}')
            # one product for all tasks: (B*hw, C) @ (C, T*ch) -> (B*hw, T*ch) -> (T, B*hw, ch)
            y = torch.addmm(bias.reshape(-1), _tokens(f, 1)[0], weight.reshape(T * ch, c_in).t())
            y = y.view(-1, T, ch).transpose(0, 1).contiguous()
        if (h, w) != (h0, w0):
            up = F.interpolate(_maps(y, T * B, h, w), size=(h0, w0), mode='bilinear',
                               align_corners=ref.align_corners)
            y = _tokens(up, T)
        acc = y if acc is None else acc.add_(y)
    if ref.fuse.with_norm and not folded:
        if any(h.training != ref.training for h in heads):
            raise RuntimeError('task_batched_heads_forward: heads differ in train/eval mode')
        acc = _per_task_batch_norm(acc, heads)
    if ref.fuse.with_activation:
        acc = ref.fuse.activate(acc)
    if not isinstance(ref.dropout, nn.Identity):
        acc = _tokens(ref.dropout(_maps(acc, T * B, h0, w0)), T)
    # the predictors differ in width: one small product per task
    outs = []
    for t, head in enumerate(heads):
        p = head.predictor
        o = torch.addmm(p.bias, acc[t], p.weight.reshape(p.out_channels, ch).t())
        outs.append(_maps(o.unsqueeze(0), B, h0, w0))
    return outs
