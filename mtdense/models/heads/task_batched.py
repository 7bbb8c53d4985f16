"""Run T ``LightMultiScaleHead`` s as single ops over tasks.

VMT-style backbones hand every task its own pyramid, stacked task-major along the
batch: level l is ``(T * B, C_l, h_l, w_l)`` (or ``(B, C_l, h_l, w_l)`` when the
level is shared by all tasks). Instead of T head calls, each level is projected
with one batched product against the T heads' stacked (fusion o reducer)
weights, upsampled with one interpolation for all tasks, and normalised with
per-task batch statistics in one pass; only the last 1x1 predictor, whose width
differs per task, is applied per task. The weights are those of
``LightMultiScaleHead.forward``, from the same functions of the heads' parameters
(:func:`~mtdense.models.heads.light_head.fused_affine`, ``level_factors``,
``compose_level``, here for T heads at once), and the order of operations per task
is the same, so the two agree to float rounding; BN running statistics are updated
as ``nn.BatchNorm2d`` would.

Without autograd on CPU, the (T, B*h*w, channels) fusion maps are written into
:class:`ScratchBuffers` kept across calls: fresh buffers of that size (25 MB per
map at 448 px and T = 8) are beyond glibc's mmap threshold and were page-faulted
in on every call, which made the heads' cost grow faster than their arithmetic.
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .light_head import (LightMultiScaleHead, compose_level, composed_weights, composed_weights_key,
                         fused_affine, level_factors)

__all__ = ['PerThreadState', 'ScratchBuffers', 'can_batch_heads', 'task_batched_heads_forward']


class PerThreadState:
    """State kept per thread in ``self._local`` (a ``threading.local``), so concurrent
    forwards of one model do not mix it; copies and pickles start empty."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __reduce__(self):
        return (type(self), ())

    def __deepcopy__(self, memo) -> 'PerThreadState':
        return type(self)()


class ScratchBuffers(PerThreadState):
    """Per-thread tensors reused across calls for intermediates that never leave a call.

    Only used without autograd and on CPU (the CUDA caching allocator already reuses
    blocks): a large fresh tensor on CPU is mapped by glibc with ``mmap`` and every page
    is faulted in again on each call, a cost that grows with the number of tasks. One
    buffer per name, thread and inference-mode flag (concurrent inference calls in
    several threads each get their own); a buffer is replaced when the requested shape,
    dtype or device differs. Deep-copies and pickles start empty.
    """

    @staticmethod
    def applies(like: Tensor) -> bool:
        """Whether scratch buffers may stand in for fresh tensors like ``like`` now."""
        return like.device.type == 'cpu' and not torch.is_grad_enabled()

    def get(self, name: str, shape: Sequence[int], like: Tensor,
            channels_last: bool = False) -> Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        store: Dict[Tuple[str, bool], Tensor] = self._local.__dict__.setdefault('buffers', {})
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        # inference tensors cannot be written outside inference mode (and no_grad callers
        # alternate with inference_mode ones), so each mode keeps its own buffer
        key = (name, torch.is_inference_mode_enabled())
        buf = store.get(key)
        if (buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != like.dtype
                or buf.device != like.device or not buf.is_contiguous(memory_format=fmt)):
            buf = torch.empty(tuple(shape), dtype=like.dtype, device=like.device,
                              memory_format=fmt)
            store[key] = buf
        return buf

    def memo(self, name: str, key: Tuple, compute):
        """``compute()``, recomputed only when ``key`` differs from the last call's."""
        store = self._local.__dict__.setdefault('memo', {})
        full = (name, torch.is_inference_mode_enabled())
        hit = store.get(full)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = compute()
        store[full] = (key, value)
        return value

    def release(self, name: str) -> None:
        """Forget buffer ``name`` (e.g. when a caller kept a view of it)."""
        store = self._local.__dict__.get('buffers', {})
        for key in [k for k in store if k[0] == name]:
            del store[key]

    def clear(self) -> None:
        """Free this thread's buffers."""
        self._local.__dict__.pop('buffers', None)
        self._local.__dict__.pop('memo', None)

    def nbytes(self) -> int:
        """Bytes held by this thread's buffers."""
        return sum(b.numel() * b.element_size()
                   for b in self._local.__dict__.get('buffers', {}).values())


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


def _tokens(f: Tensor, lead: int) -> Tensor:
    """(N, C, h, w) -> (lead, N / lead * h * w, C); free for channels-last strides."""
    return f.permute(0, 2, 3, 1).reshape(lead, -1, f.shape[1])


def _maps(tokens: Tensor, n: int, h: int, w: int) -> Tensor:
    """(lead, n / lead * h * w, C) -> (n, C, h, w) view with channels-last strides."""
    return tokens.reshape(n, h, w, tokens.shape[-1]).permute(0, 3, 1, 2)


def task_batched_heads_forward(heads: Sequence[LightMultiScaleHead], feats: Sequence[Tensor],
                               stacked: Sequence[bool], batch_size: int,
                               scratch: Optional[ScratchBuffers] = None) -> List[Tensor]:
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
        scratch: buffers for the fusion maps and the composed weights, used without
            autograd on CPU (:meth:`ScratchBuffers.applies`); the outputs are always
            fresh tensors.

    Returns:
        per task ``(B, out_channels_t, h_0, w_0)`` (channels-last strides).
    """
    num_tasks, ref = len(heads), heads[0]
    if len(feats) != len(ref.in_channels) or len(stacked) != len(feats):
        raise ValueError(f'task_batched_heads_forward: expected {len(ref.in_channels)} levels and '
                         f'as many flags, got {len(feats)} levels and {len(stacked)} flags')
    B, ch, T = batch_size, ref.channels, num_tasks
    use_scratch = scratch is not None and ScratchBuffers.applies(feats[0])
    if any(h.training != ref.training for h in heads):
        raise RuntimeError('task_batched_heads_forward: heads differ in train/eval mode')
    if use_scratch:
        # without autograd the composed weights are computed once per weight version
        level_weights, folded = scratch.memo('level_weights', composed_weights_key(heads),
                                             lambda: composed_weights(heads))
        fuse_w = fuse_b = None
    else:
        level_weights = None
        fuse_w, fuse_b, folded = fused_affine(heads)
    h0, w0 = (int(s) for s in feats[0].shape[2:])
    n0 = B * h0 * w0
    acc = None
    for lvl, (f, is_stacked) in enumerate(zip(feats, stacked)):
        c_in, h, w = f.shape[1:]
        if c_in != ref.in_channels[lvl]:
            raise ValueError(f'LightMultiScaleHead: level {lvl} should have {ref.in_channels[lvl]} '
                             f'channels, got {tuple(f.shape)}')
        if not is_stacked and f.shape[0] != B:
            raise ValueError(f'task_batched_heads_forward: shared level {lvl} has batch '
                             f'{f.shape[0]}, expected {B}')
        if is_stacked and f.shape[0] != T * B:
            raise ValueError(f'task_batched_heads_forward: stacked level {lvl} has batch '
                             f'{f.shape[0]}, expected {T} tasks x {B}')
        first = acc is None  # level 0: at (h0, w0), becomes the accumulator
        n = B * h * w
        if level_weights is None and ref.training and c_in > n:
            # training, fewer tokens than input channels (the coarse levels of small
            # inputs): the reducer then the fusion slice at this level's resolution costs
            # less than composing their (ch x C_l) product, forward and backward (eval
            # mode always composes, so its outputs do not depend on autograd being on)
            y = _project_factored(heads, fuse_w, fuse_b, lvl, f, is_stacked, T)
        else:
            weight, bias = (level_weights[lvl] if level_weights is not None
                            else compose_level(level_factors(heads, fuse_w, lvl), fuse_b, lvl))
            y = _project(weight, bias, f, is_stacked, T, scratch if (use_scratch and first)
                         else None, n0)
        if (h, w) != (h0, w0):
            maps = _maps(y, T * B, h, w)
            if use_scratch:
                # the functional op with an output buffer (same kernel and scales as
                # F.interpolate with a target size)
                up = torch._C._nn.upsample_bilinear2d(
                    maps, (h0, w0), ref.align_corners, None, None,
                    out=scratch.get('up', (T * B, ch, h0, w0), y, channels_last=True))
            else:
                up = F.interpolate(maps, size=(h0, w0), mode='bilinear',
                                   align_corners=ref.align_corners)
            y = _tokens(up, T)
        acc = y if acc is None else acc.add_(y)
    norm_here = ref.fuse.with_norm and not folded  # training-mode BN: per-task batch statistics
    if not norm_here and ref.fuse.with_activation:
        # in place on the scratch accumulator (nothing else holds it without autograd)
        acc = acc.relu_() if use_scratch else ref.fuse.activate(acc)
    # per task: [BN with its own batch statistics], [ReLU], [dropout], then the predictor
    # (the widths differ); unbind (not acc[t]) so the backward stacks the T gradients once
    # instead of zero-filling T full-size maps
    outs = []
    for head, a in zip(heads, acc.unbind(0)):
        if norm_here:
            a = _batch_norm_tokens(head.fuse.norm, a)
            if ref.fuse.with_activation:
                a = head.fuse.activate(a)
        if not isinstance(head.dropout, nn.Identity):
            a = _tokens(head.dropout(_maps(a.unsqueeze(0), B, h0, w0)), 1)[0]
        p = head.predictor
        o = torch.addmm(p.bias, a, p.weight.reshape(p.out_channels, ch).t())
        outs.append(_maps(o.unsqueeze(0), B, h0, w0))
    return outs


def _project(weight: Tensor, bias: Tensor, f: Tensor, is_stacked: bool, T: int,
             scratch: Optional[ScratchBuffers], n0: int) -> Tensor:
    """``(T, n, ch)`` level projection with composed weights (into the scratch
    accumulator when given)."""
    ch, c_in = weight.shape[1], weight.shape[2]
    if is_stacked:
        # (T, B*hw, C) @ (T, C, ch) + b_t -> (T, B*hw, ch)
        out = scratch.get('acc', (T, n0, ch), f) if scratch is not None else None
        return torch.baddbmm(bias.unsqueeze(1), _tokens(f, T), weight.transpose(1, 2), out=out)
    # one product for all tasks: (B*hw, C) @ (C, T*ch) -> (B*hw, T*ch) -> (T, B*hw, ch)
    tokens = _tokens(f, 1)[0]
    out = scratch.get('shared', (tokens.shape[0], T * ch), f) if scratch is not None else None
    y = torch.addmm(bias.reshape(-1), tokens, weight.reshape(T * ch, c_in).t(), out=out)
    if scratch is not None:
        return scratch.get('acc', (T, n0, ch), f).copy_(y.view(-1, T, ch).transpose(0, 1))
    return y.view(-1, T, ch).transpose(0, 1).contiguous()


def _project_factored(heads: Sequence[LightMultiScaleHead], fuse_w: Tensor,
                      fuse_b: Optional[Tensor], lvl: int, f: Tensor, is_stacked: bool,
                      T: int) -> Tensor:
    """``(T, n, ch)`` level projection as reducer then fusion slice (no composed weights):
    ``(x R_l^T + r_b) F_l^T`` (+ the fusion bias at level 0), equal to the composed form."""
    f_l, r_w, r_b = level_factors(heads, fuse_w, lvl)
    ch, c_in = r_w.shape[1], r_w.shape[2]
    if is_stacked:
        x = _tokens(f, T)
        y = torch.bmm(x, r_w.transpose(1, 2)) if r_b is None else \
            torch.baddbmm(r_b.unsqueeze(1), x, r_w.transpose(1, 2))
    else:
        tokens = _tokens(f, 1)[0]
        y = (tokens @ r_w.reshape(T * ch, c_in).t() if r_b is None else
             torch.addmm(r_b.reshape(-1), tokens, r_w.reshape(T * ch, c_in).t()))
        y = y.view(-1, T, ch).transpose(0, 1)
    if lvl == 0 and fuse_b is not None:
        return torch.baddbmm(fuse_b.unsqueeze(1), y, f_l.transpose(1, 2))
    return torch.bmm(y, f_l.transpose(1, 2))


def _batch_norm_tokens(norm: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """Training-mode ``norm`` on one task's ``(B*h*w, ch)`` tokens: the native batch-norm
    kernel, with the statistics and the running-buffer update ``nn.BatchNorm2d`` makes
    (one fused op forward and backward; ``var_mean`` over the token axis was several
    times slower on CPU)."""
    norm.num_batches_tracked.add_(1)
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, True,
                        norm.momentum, norm.eps)
