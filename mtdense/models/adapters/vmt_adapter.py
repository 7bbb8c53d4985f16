"""VMT-Adapter and VMT-Adapter-Lite (docs/methods.md; our reading of
Xin et al., AAAI 2024, which publishes no code).

For every block, with x the tokens after the attention residual and u = LN2(x)
the MLP input::

    h      = act(u W_d + b_d)                  # shared down-projection, d -> r
    x_next = x + MLP(u) + s * (h W_u + b_u)    # task-generic main stream

At the tapped blocks (default: the blocks whose outputs are backbone outputs,
i.e. the last block of every Swin stage / the ViT out_indices), per task t::

    h_t = KEM_t(h)                             # see kem.py; default gamma_t * h + beta_t
    z_t = x_next + s * ((h_t - h) W_u)         # task-specific feature (b_u cancels)

and the level output of task t is the backbone's own output transform applied
to z_t. The backbone runs once; the task branch is one batched (T, M, r) x
(r, d) product per tapped block, with the add of x_next fused into it, plus
the output transform on T*B maps.

Lite ties W_u = W_d^T and adds a zero-initialised per-channel output scale
alpha (d) so that the model is the pretrained one at init::

    x_next = x + MLP(u) + s * (alpha * (h W_d^T) + b_u)
    z_t    = x_next + s * alpha * ((h_t - h) W_d^T)

The adapter branch is added to the block *output* (outside the block's
drop-path and layer-scale, as in AdaptFormer's parallel adapter).

Without autograd on CPU the (T, M, d) task maps z are written into buffers kept
across calls (:class:`~mtdense.models.heads.task_batched.ScratchBuffers`): they
only feed the output transform, and a fresh 38 MB map (stride 4, 448 px, T = 8)
was page-faulted in on every call.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.heads.task_batched import PerThreadState, ScratchBuffers
from mtdense.models.petl import (BackboneHost, BasePEFTMethod, build_activation,
                                 check_bottleneck_args, stage_bottlenecks)
from mtdense.registry import MODELS
from .kem import KEM_TYPES, build_kem, kem_num_params


class _ForwardState(PerThreadState):
    """The hooks' hand-over between an MLP slot, its block and ``forward_features``, kept
    per thread so that concurrent forwards of one model (inference servers) do not mix
    their tensors. Copies and pickles start empty."""

    @property
    def cache(self) -> Dict[int, Tuple[Tensor, Tensor]]:
        """block index -> (h, h W_u + b_u) of the running forward"""
        return self._local.__dict__.setdefault('cache', {})

    @property
    def task_out(self) -> Dict[int, Tensor]:
        """block index -> task maps z (T * B, ...) of the running forward"""
        return self._local.__dict__.setdefault('task_out', {})


class SharedAdapter(nn.Module):
    """Shared down/up projections of one block (VMT: separate W_u; Lite: tied)."""

    def __init__(self, dim: int, rank: int, act: str, lite: bool) -> None:
        super().__init__()
        self.dim, self.rank, self.lite = dim, rank, lite
        self.down = nn.Linear(dim, rank)
        nn.init.zeros_(self.down.bias)
        self.act = build_activation(act, 'VMTAdapter')
        if lite:
            self.up_bias = nn.Parameter(torch.zeros(dim))
            self.out_scale = nn.Parameter(torch.zeros(dim))  # zero -> identity at init
        else:
            self.up = nn.Linear(rank, dim)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    @staticmethod
    def num_params(dim: int, rank: int, lite: bool) -> int:
        if lite:
            return dim * rank + rank + 2 * dim
        return 2 * dim * rank + rank + dim

    def hidden(self, u: Tensor) -> Tensor:
        return self.act(self.down(u))

    def up_full(self, h: Tensor) -> Tensor:
        """h W_u + b_u (Lite: alpha * (h W_d^T) + b_u)."""
        if self.lite:
            return self.out_scale * torch.matmul(h, self.down.weight) + self.up_bias
        return self.up(h)

    def add_up_delta(self, base: Tensor, delta: Tensor, scale: float,
                     out: Optional[Tensor] = None) -> Tensor:
        """``base + scale * (delta W_u)`` (no bias) for every task in one fused op.

        base: (M, d) shared stream; delta: (T, M, r) -> (T, M, d). The add is
        fused into the batched product (``baddbmm``), so the T task maps are
        written once (into ``out`` if given: a reused buffer, no autograd).
        """
        if self.lite:
            weight = self.down.weight * self.out_scale  # alpha * W_d^T, as (r, d)
        else:
            weight = self.up.weight.t()
        weight = (scale * weight).unsqueeze(0).expand(delta.shape[0], -1, -1)
        return torch.baddbmm(base.unsqueeze(0), delta, weight, out=out)


@MODELS.register_module()
class VMTAdapter(BasePEFTMethod):
    """VMT-Adapter: shared parallel adapters + per-task KEMs at tapped blocks.

    Args:
        tasks: task names.
        bottleneck: r, an int or one per stage. ``None`` (default): per stage
            r_s = round(d_s * bottleneck_ratio) (Swin-T: 6/12/24/48, ~1.00% of the
            mmseg Swin-T backbone for 5 tasks; ViT-B: 48).
        bottleneck_ratio: used when ``bottleneck`` is None (VMT 1/16, Lite 1/24).
        scale: s.
        kem: 'scale_shift' | 'scale' | 'lowrank' | 'none'.
        kem_rank: k of the 'lowrank' KEM.
        tap_blocks: 'last' (every block whose output is a backbone output) or a list
            of such global block indices (negative: counted from the last of them, e.g.
            ``[-2, -1]``); other levels are shared by all tasks.
        act: activation of the down-projection.
        train_norms, train_rel_pos, train_patch_embed: see ``BasePEFTMethod``.
    """

    lite = False
    default_ratio = 1.0 / 16

    def __init__(self,
                 tasks: Sequence[str],
                 bottleneck: Union[int, Sequence[int], None] = None,
                 bottleneck_ratio: Optional[float] = None,
                 scale: float = 1.0,
                 kem: str = 'scale_shift',
                 kem_rank: int = 4,
                 tap_blocks='last',
                 act: str = 'gelu',
                 train_norms: bool = False,
                 train_rel_pos: bool = False,
                 train_patch_embed: bool = False) -> None:
        super().__init__(tasks, train_norms, train_rel_pos, train_patch_embed)
        if kem not in KEM_TYPES:
            raise ValueError(f'{type(self).__name__}: kem={kem!r} is not one of {KEM_TYPES}')
        check_bottleneck_args(bottleneck, bottleneck_ratio, type(self).__name__)
        self.bottleneck_cfg = bottleneck
        self.bottleneck_ratio = self.default_ratio if bottleneck_ratio is None else bottleneck_ratio
        self.scale = float(scale)
        self.kem_type = kem
        self.kem_rank = int(kem_rank)
        self.tap_blocks_cfg = tap_blocks
        self.act_name = act
        build_activation(act, type(self).__name__)  # validate early
        self.task_specific = kem != 'none'

    # ---------------------------------------------------------------- build
    def _build(self, host: BackboneHost) -> None:
        self.ranks = stage_bottlenecks(host.stage_dims(), self.bottleneck_cfg,
                                       self.bottleneck_ratio, type(self).__name__)
        self.taps = self._tap_blocks(host, self.tap_blocks_cfg) if self.task_specific else []
        self.adapters = nn.ModuleList([
            SharedAdapter(b.dim, self.ranks[b.stage], self.act_name, self.lite) for b in host.blocks
        ])
        self.kems = nn.ModuleDict({
            str(i):
            build_kem(self.kem_type, self.num_tasks, self.ranks[host.blocks[i].stage],
                      self.kem_rank)
            for i in self.taps
        })
        self._state = _ForwardState()
        self._scratch = ScratchBuffers()
        self._hook_mlp_and_block(host)

    # ---------------------------------------------------------------- hooks
    def _mlp_hook(self, index: int, module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        u = args[0] if args else kwargs['x']
        adapter = self.adapters[index]
        h = adapter.hidden(u)
        self._state.cache[index] = (h, adapter.up_full(h))

    def _block_hook(self, index: int, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        cache = self._state.cache
        if index not in cache:
            raise RuntimeError(f'{type(self).__name__}: block {index} ran without its MLP slot; '
                               'the host description does not match the backbone')
        h, a = cache.pop(index)
        x_next = output + self.scale * a.reshape(output.shape)
        kem = self.kems[str(index)] if str(index) in self.kems else None
        if kem is not None:
            r, d = h.shape[-1], x_next.shape[-1]
            delta = kem(h.reshape(-1, r))  # (T, M, r)
            buf = (self._scratch.get(f'z{index}', delta.shape[:2] + (d,), x_next)
                   if ScratchBuffers.applies(x_next) else None)
            z = self.adapters[index].add_up_delta(x_next.reshape(-1, d), delta, self.scale,
                                                  out=buf)  # (T, M, d)
            self._state.task_out[index] = z.reshape(-1, *output.shape[1:])
        return x_next

    # -------------------------------------------------------------- forward
    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        host = self.host
        cache, task_out = self._state.cache, self._state.task_out
        cache.clear()
        task_out.clear()
        try:
            outs = host.forward_main(x)
            feats, flags = [], []
            for lvl, ref in enumerate(host.levels):
                z = task_out.pop(ref.block_index, None)
                if z is None:
                    feats.append(outs[lvl])
                    flags.append(False)
                else:
                    feat = host.output_transform(lvl, z, self._hw(outs[lvl]))
                    if feat.untyped_storage().data_ptr() == z.untyped_storage().data_ptr():
                        # a transform that is a pure view hands z itself out: not reusable
                        self._scratch.release(f'z{ref.block_index}')
                    feats.append(feat)
                    flags.append(True)
        finally:
            cache.clear()
            task_out.clear()
        return feats, flags

    # ------------------------------------------------------------- counting
    def expected_num_params(self) -> int:
        host = self.host
        n = sum(
            SharedAdapter.num_params(b.dim, self.ranks[b.stage], self.lite) for b in host.blocks)
        n += sum(
            kem_num_params(self.kem_type, self.num_tasks, self.ranks[host.blocks[i].stage],
                           self.kem_rank) for i in self.taps)
        return n

    def task_param_counts(self) -> Dict[str, int]:
        host = self.host
        per_task = sum(
            kem_num_params(self.kem_type, 1, self.ranks[host.blocks[i].stage], self.kem_rank)
            for i in self.taps)
        return {t: per_task for t in self.tasks}


@MODELS.register_module()
class VMTAdapterLite(VMTAdapter):
    """VMT-Adapter-Lite: W_u = W_d^T (tied), separate biases, zero-initialised
    per-channel output scale. Default bottleneck r_s = round(d_s / 24) (Swin-T:
    4/8/16/32, ~0.36% of the mmseg Swin-T backbone for 5 tasks; ViT-B: 32).
    Same arguments as :class:`VMTAdapter`."""

    lite = True
    default_ratio = 1.0 / 24
