"""Per-task parallel adapters (AdaptFormer-style; Chen et al., NeurIPS 2022).

For every block and task t, with u = LN2(x)::

    x_next_t = x_t + MLP(u_t) + s * (act(u_t W_d^t + b_d^t) W_u^t + b_u^t)

W_u = b_u = 0 at init. Every task has its own stream, so the backbone runs once
per task; we batch the passes by repeating the batch T times (task-major) and
index the adapter weights by task (one batched product per block), which is
the honest cost: backbone FLOPs grow linearly with T.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import (BackboneHost, BasePEFTMethod, build_activation,
                                 check_bottleneck_args, repeat_tasks, stage_bottlenecks)
from mtdense.registry import MODELS


class TaskAdapterBank(nn.Module):
    """T adapters d -> r -> d of one block, applied to a task-major stacked input."""

    def __init__(self, num_tasks: int, dim: int, rank: int, act: str) -> None:
        super().__init__()
        self.num_tasks, self.dim, self.rank = num_tasks, dim, rank
        bound = 1.0 / dim**0.5  # nn.Linear's default init of the down-projection
        self.w_down = nn.Parameter(torch.empty(num_tasks, dim, rank).uniform_(-bound, bound))
        self.b_down = nn.Parameter(torch.zeros(num_tasks, rank))
        self.w_up = nn.Parameter(torch.zeros(num_tasks, rank, dim))
        self.b_up = nn.Parameter(torch.zeros(num_tasks, dim))
        self.act = build_activation(act, 'PerTaskAdapter')

    @staticmethod
    def num_params(num_tasks: int, dim: int, rank: int) -> int:
        return num_tasks * (2 * dim * rank + rank + dim)

    def forward(self, u: Tensor) -> Tensor:
        ut = u.reshape(self.num_tasks, -1, self.dim)  # (T, M, d)
        h = self.act(torch.bmm(ut, self.w_down) + self.b_down.unsqueeze(1))
        return (torch.bmm(h, self.w_up) + self.b_up.unsqueeze(1)).reshape(u.shape)


@MODELS.register_module()
class PerTaskAdapter(BasePEFTMethod):
    """Per-task AdaptFormer adapters at every block; one backbone pass per task.

    Args:
        tasks: task names.
        bottleneck: r (int or one per stage); None: round(d_s * bottleneck_ratio).
        bottleneck_ratio: default 1/16 (the VMT-Adapter's per-stage width, per task).
        scale: s (AdaptFormer uses 0.1).
        act: 'relu' (AdaptFormer) | 'gelu' | ...
    """

    task_specific = True

    def __init__(self,
                 tasks: Sequence[str],
                 bottleneck: Union[int, Sequence[int], None] = None,
                 bottleneck_ratio: Optional[float] = None,
                 scale: float = 0.1,
                 act: str = 'relu',
                 train_norms: bool = False,
                 train_rel_pos: bool = False,
                 train_patch_embed: bool = False) -> None:
        super().__init__(tasks, train_norms, train_rel_pos, train_patch_embed)
        check_bottleneck_args(bottleneck, bottleneck_ratio, 'PerTaskAdapter')
        self.bottleneck_cfg = bottleneck
        self.bottleneck_ratio = 1.0 / 16 if bottleneck_ratio is None else float(bottleneck_ratio)
        self.scale = float(scale)
        self.act_name = act
        build_activation(act, 'PerTaskAdapter')

    def _build(self, host: BackboneHost) -> None:
        self.ranks = stage_bottlenecks(host.stage_dims(), self.bottleneck_cfg,
                                       self.bottleneck_ratio, 'PerTaskAdapter')
        self.adapters = nn.ModuleList([
            TaskAdapterBank(self.num_tasks, b.dim, self.ranks[b.stage], self.act_name)
            for b in host.blocks
        ])
        self._cache: Dict[int, Tensor] = {}
        self._hook_mlp_and_block(host)

    def _mlp_hook(self, index: int, module, args, kwargs, output) -> None:
        u = args[0] if args else kwargs['x']
        self._cache[index] = self.adapters[index](u)

    def _block_hook(self, index: int, module, args, output: Tensor) -> Tensor:
        a = self._cache.pop(index)
        return output + self.scale * a.reshape(output.shape)

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        self._cache.clear()
        try:
            outs = self.host.forward_main(repeat_tasks(x, self.num_tasks))
        finally:
            self._cache.clear()
        return outs, [True] * len(outs)

    def expected_num_params(self) -> int:
        return sum(
            TaskAdapterBank.num_params(self.num_tasks, b.dim, self.ranks[b.stage])
            for b in self.host.blocks)

    def task_param_counts(self) -> Dict[str, int]:
        n = sum(TaskAdapterBank.num_params(1, b.dim, self.ranks[b.stage]) for b in self.host.blocks)
        return {t: n for t in self.tasks}
