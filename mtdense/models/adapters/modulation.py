"""Modulation Adapters (Iakovleva, Alahari & Verbeek, 2023) for timm CNNs.

Every conv filter ``W`` (out x in/groups x kh x kw) of the frozen base network is
modulated per task by a factored matrix::

    W_t[o, i, :, :] = M_t[o, i] * W[o, i, :, :],    M_t = A_t B_t^T
    A_t: out x k,  B_t: (in/groups) x k,  k = min(rank, out, in/groups)

(a rank above ``min(out, in/groups)`` could not represent more, so it is capped;
for a depthwise conv ``in/groups = 1`` and M_t is a per-channel scale.) ``rank``
sets the per-task budget: ``sum_layers k (out + in/groups)`` parameters, plus the
per-task BatchNorms with ``norm='task'`` (2 per channel).

Initialisation (M_t = 1 exactly, without symmetric factors): the first columns
of A_t and B_t are ones, the other columns of B_t are zero and those of A_t are
drawn from N(0, 1/k). Then A_t B_t^T = 1·1^T + 0 exactly, so the adapted network
computes the base network's function at step 0, while the random columns of A_t
give the remaining rank different gradients (all-equal factors, e.g. A = B =
1/sqrt(k), would keep the k columns identical forever: effectively rank 1).

All tasks run in one grouped conv per layer (see :mod:`mtdense.models.petl.conv`):
the modulated weights of the active tasks are stacked to ``(T*out, in/groups, kh, kw)``
and used with ``groups * T``; each modulated conv's bank is its slot's kernel.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import ConvSlot, ConvTaskMethod, safe_key
from mtdense.registry import MODELS

__all__ = ['ModulationBank', 'ModulationAdapter']


class ModulationBank(nn.Module):
    """Factors ``A: (T, out, k)`` and ``B: (T, in, k)`` of one conv for T tasks."""

    def __init__(self, num_tasks: int, out_channels: int, in_channels: int, rank: int) -> None:
        super().__init__()
        self.rank = self.effective_rank(out_channels, in_channels, rank)
        k = self.rank
        a = torch.zeros(num_tasks, out_channels, k)
        b = torch.zeros(num_tasks, in_channels, k)
        a[:, :, 0] = 1.0
        b[:, :, 0] = 1.0
        if k > 1:
            a[:, :, 1:].normal_(0.0, 1.0 / math.sqrt(k))
        self.a = nn.Parameter(a)
        self.b = nn.Parameter(b)

    @staticmethod
    def effective_rank(out_channels: int, in_channels: int, rank: int) -> int:
        return max(1, min(int(rank), int(out_channels), int(in_channels)))

    @staticmethod
    def num_params(num_tasks: int, out_channels: int, in_channels: int, rank: int) -> int:
        k = ModulationBank.effective_rank(out_channels, in_channels, rank)
        return num_tasks * k * (out_channels + in_channels)

    def modulation(self, active: Optional[Sequence[int]] = None) -> Tensor:
        """``M = A B^T`` of the active tasks: ``(T', out, in)``."""
        a, b = self.a, self.b
        if active is not None and list(active) != list(range(a.shape[0])):
            idx = torch.as_tensor(list(active), device=a.device)
            a, b = a.index_select(0, idx), b.index_select(0, idx)
        return torch.bmm(a, b.transpose(1, 2))

    def forward(self, weight: Tensor, active: Optional[Sequence[int]] = None) -> Tensor:
        """Modulated weights of the active tasks stacked: ``(T'*out, in, kh, kw)``."""
        m = self.modulation(active)
        return (m[..., None, None] * weight.unsqueeze(0)).flatten(0, 1)

    def conv_streams(self, slot: ConvSlot, x: Tensor, active: Sequence[int]) -> Tensor:
        """Kernel of ``slot``: its conv with each active task's modulated weights."""
        bias = slot.bias.repeat(len(active)) if slot.bias is not None else None
        return slot.task_conv(x, self(slot.weight, active), bias)


@MODELS.register_module()
class ModulationAdapter(ConvTaskMethod):
    """Per-task multiplicative, rank-k modulation of every conv of a frozen CNN.

    Args:
        tasks: task (or domain) names.
        rank: k, the rank of each M_t (capped per layer at ``min(out, in/groups)``).
        norm: ``'task'`` (per-task BatchNorm, default) or ``'frozen'`` (shared base BN).
        modulate_depthwise: also modulate depthwise convs (a per-channel scale each).
    """

    def __init__(self, tasks: Sequence[str], rank: int = 4, norm: str = 'task',
                 modulate_depthwise: bool = True) -> None:
        super().__init__(tasks, norm)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
            raise ValueError(f'ModulationAdapter: rank must be a positive int, got {rank!r}')
        self.rank = rank
        self.modulate_depthwise = bool(modulate_depthwise)
        self.banks = nn.ModuleDict()
        self._shapes: Dict[str, Tuple[int, int]] = {}

    def _modulated(self, slot: ConvSlot) -> bool:
        return self.modulate_depthwise or not slot.depthwise

    def _build_conv(self, slot: ConvSlot) -> None:
        if not self._modulated(slot):
            return
        out_ch, in_ch = slot.out_channels, slot.in_channels // slot.groups
        key = safe_key(slot.name)
        self.banks[key] = ModulationBank(self.num_tasks, out_ch, in_ch, self.rank)
        self._shapes[slot.name] = (out_ch, in_ch)
        slot.set_kernel(self.banks[key])

    # ------------------------------------------------------------- counting
    def per_task_modulation_params(self) -> int:
        return sum(ModulationBank.num_params(1, o, i, self.rank) for o, i in self._shapes.values())

    def expected_num_params(self) -> int:
        return self.num_tasks * (self.per_task_modulation_params() + self.norm_task_params())

    def task_param_counts(self) -> Dict[str, int]:
        n = self.per_task_modulation_params() + self.norm_task_params()
        return {t: n for t in self.tasks}

    def overhead_macs(self, slot: ConvSlot, out_shape: Tuple[int, int, int]) -> Tuple[int, int]:
        if not self._modulated(slot):
            return 0, 0
        out_ch, in_ch = self._shapes[slot.name]
        k = ModulationBank.effective_rank(out_ch, in_ch, self.rank)
        kh, kw = slot.kernel_size
        # once per forward and task: M = A B^T, then M * W
        return 0, out_ch * in_ch * k + out_ch * in_ch * kh * kw
