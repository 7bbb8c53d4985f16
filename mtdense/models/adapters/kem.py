"""Knowledge extraction modules (KEM) of the VMT-Adapter, batched over tasks.

A KEM maps the shared hidden code h (M, r) of a tapped block to the
task-specific codes h_t; the adapter only needs the differences
``delta_t = h_t - h`` stacked as (T, M, r), computed in one batched op:

* ``scale_shift``: h_t = gamma_t * h + beta_t     (gamma = 1, beta = 0 at init; 2r per task)
* ``scale``:       h_t = gamma_t * h              (gamma = 1 at init; r per task)
* ``lowrank``:     h_t = h + (h A_t) B_t, A_t: r x k, B_t: k x r   (B = 0 at init; 2rk per task)
* ``none``:        h_t = h (no task-specific features; every task shares the stream)
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

KEM_TYPES = ('scale_shift', 'scale', 'lowrank', 'none')


class ScaleShiftKEM(nn.Module):
    """h_t = gamma_t * h + beta_t; returns delta_t = (gamma_t - 1) * h + beta_t."""

    def __init__(self, num_tasks: int, rank: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_tasks, rank))
        self.beta = nn.Parameter(torch.zeros(num_tasks, rank))

    @staticmethod
    def num_params(num_tasks: int, rank: int, kem_rank: int = 0) -> int:
        return 2 * num_tasks * rank

    def forward(self, h: Tensor) -> Tensor:
        # (T, 1, r) * (1, M, r) + (T, 1, r) -> (T, M, r)
        return (self.gamma - 1).unsqueeze(1) * h.unsqueeze(0) + self.beta.unsqueeze(1)


class ScaleKEM(nn.Module):
    """h_t = gamma_t * h; returns delta_t = (gamma_t - 1) * h."""

    def __init__(self, num_tasks: int, rank: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_tasks, rank))

    @staticmethod
    def num_params(num_tasks: int, rank: int, kem_rank: int = 0) -> int:
        return num_tasks * rank

    def forward(self, h: Tensor) -> Tensor:
        return (self.gamma - 1).unsqueeze(1) * h.unsqueeze(0)


class LowRankKEM(nn.Module):
    """h_t = h + (h A_t) B_t (per-task residual r -> k -> r); returns (h A_t) B_t."""

    def __init__(self, num_tasks: int, rank: int, kem_rank: int) -> None:
        super().__init__()
        if kem_rank <= 0:
            raise ValueError(f'LowRankKEM: kem_rank must be positive, got {kem_rank}')
        self.A = nn.Parameter(torch.empty(num_tasks, rank, kem_rank))
        self.B = nn.Parameter(torch.zeros(num_tasks, kem_rank, rank))
        # LoRA-style: random A, zero B -> identity at init, non-zero gradient for B
        bound = 1.0 / math.sqrt(rank)
        nn.init.uniform_(self.A, -bound, bound)

    @staticmethod
    def num_params(num_tasks: int, rank: int, kem_rank: int = 0) -> int:
        return 2 * num_tasks * rank * kem_rank

    def forward(self, h: Tensor) -> Tensor:
        # (1, M, r) @ (T, r, k) -> (T, M, k) @ (T, k, r) -> (T, M, r)
        return torch.matmul(torch.matmul(h.unsqueeze(0), self.A), self.B)


def build_kem(kem: str, num_tasks: int, rank: int, kem_rank: int) -> nn.Module:
    if kem == 'scale_shift':
        return ScaleShiftKEM(num_tasks, rank)
    if kem == 'scale':
        return ScaleKEM(num_tasks, rank)
    if kem == 'lowrank':
        return LowRankKEM(num_tasks, rank, kem_rank)
    raise ValueError(f'kem={kem!r} is not one of {KEM_TYPES}')


def kem_num_params(kem: str, num_tasks: int, rank: int, kem_rank: int) -> int:
    if kem == 'none':
        return 0
    cls = {'scale_shift': ScaleShiftKEM, 'scale': ScaleKEM, 'lowrank': LowRankKEM}[kem]
    return cls.num_params(num_tasks, rank, kem_rank)
