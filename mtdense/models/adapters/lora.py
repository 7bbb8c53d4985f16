"""Low-rank weight deltas (LoRA) that attach to a host's linear layers.

A :class:`LoRABank` holds ``G`` independent low-rank deltas for one weight
W (out x in): ``A_g`` (in x r) and ``B_g`` (r x out), ``B = 0`` at init, so
``y = x W^T + b + s * (x A_g) B_g`` is the pretrained layer at init. ``G`` is
the number of tasks for per-task banks and 1 for a shared bank.

Two ways to apply it, chosen by the host:

* **forward hook** on an ``nn.Linear`` called as a module (mmseg/timm Swin,
  timm ViT, every MLP): the layer's input stacks the tasks along the batch
  (task-major), so the per-task products are one batched matmul
  ``(G, M, in) @ (G, in, r) @ (G, r, out)``;
* **parametrisation** of a weight consumed functionally (``nn.MultiheadAttention``
  in mmseg's ViT: ``in_proj_weight`` and ``out_proj.weight``): the weight becomes
  ``W + s * (A_t B_t)^T`` for the *active* task, so the method runs one backbone
  pass per task. ``torch.nn.utils.parametrize`` moves the original weight to
  ``...parametrizations.<name>.original`` (state-dict key changes there only;
  checkpoints are loaded before methods attach).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils import parametrize


class LoRABank(nn.Module):
    """``groups`` low-rank deltas of a (out x in) weight."""

    def __init__(self, groups: int, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f'LoRABank: rank must be positive, got {rank}')
        self.groups, self.in_features, self.out_features, self.rank = (groups, in_features,
                                                                       out_features, rank)
        self.A = nn.Parameter(torch.empty(groups, in_features, rank))
        self.B = nn.Parameter(torch.zeros(groups, rank, out_features))
        # as nn.Linear / LoRA: kaiming-uniform(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in))
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.A, -bound, bound)

    @staticmethod
    def num_params(groups: int, in_features: int, out_features: int, rank: int) -> int:
        return groups * rank * (in_features + out_features)

    def delta(self, x: Tensor, group: Optional[int] = None) -> Tensor:
        """Low-rank term for inputs ``x`` (..., in).

        ``group=None``: ``x`` stacks the groups task-major along its leading dims
        (a shared bank, groups = 1, takes any input). ``group=g``: use bank g for all of x.
        """
        shape = x.shape[:-1] + (self.out_features, )
        if group is None:
            xg = x.reshape(self.groups, -1, self.in_features)
            return torch.matmul(torch.matmul(xg, self.A), self.B).reshape(shape)
        xg = x.reshape(1, -1, self.in_features)
        a, b = self.A[group:group + 1], self.B[group:group + 1]
        return torch.matmul(torch.matmul(xg, a), b).reshape(shape)

    def add_to(self, out: Tensor, x: Tensor, scale: float, group: int = 0) -> Tensor:
        """``out + scale * (x A_g) B_g`` for one group, all of ``x`` (..., in); the add is
        fused into the second product (``addmm``)."""
        x2 = x.reshape(-1, self.in_features)
        o2 = out.reshape(-1, self.out_features)
        return torch.addmm(o2, x2 @ self.A[group], self.B[group], alpha=scale).view(out.shape)

    def add_to_groups(self, base: Tensor, x: Tensor, scale: float) -> Tensor:
        """``base + scale * (x_g A_g) B_g`` for every group g at once, as (G, M, out).

        ``x``: (M, in), the same input for every group (one product against the
        groups' stacked A), or (G, M, in), one input per group. ``base``: (M, out)
        shared by the groups, or (G, M, out). The add is fused into the batched
        second product (``baddbmm``).
        """
        g, r = self.groups, self.rank
        if x.dim() == 2:
            a = self.A.permute(1, 0, 2).reshape(self.in_features, g * r)
            xa = (x @ a).view(x.shape[0], g, r).transpose(0, 1)
        else:
            xa = torch.bmm(x, self.A)
        if base.dim() == 2:
            base = base.unsqueeze(0)
        return torch.baddbmm(base, xa, self.B, alpha=scale)

    def weight_delta(self, group: int) -> Tensor:
        """(out x in) dense delta of bank ``group``."""
        return torch.matmul(self.A[group], self.B[group]).t()


class _WeightDelta(nn.Module):
    """Parametrisation W -> W + delta_fn(); delta_fn is owned by the method.

    The callable is stored outside ``_modules`` so the method's parameters are
    not registered (or saved) a second time under the backbone.
    """

    def __init__(self, delta_fn: Callable[[], Optional[Tensor]]) -> None:
        super().__init__()
        self.__dict__['delta_fn'] = delta_fn

    def forward(self, weight: Tensor) -> Tensor:
        d = self.__dict__['delta_fn']()
        return weight if d is None else weight + d.to(weight.dtype)


def add_weight_delta(module: nn.Module, name: str, delta_fn: Callable[[], Optional[Tensor]]):
    """Parametrise ``module.<name>`` as ``W + delta_fn()``; returns a remover."""
    parametrize.register_parametrization(module, name, _WeightDelta(delta_fn), unsafe=True)

    class _Handle:

        def remove(self_inner) -> None:
            if parametrize.is_parametrized(module, name):
                parametrize.remove_parametrizations(module, name, leave_parametrized=False)

    return _Handle()


# ``selector()`` says how a bank applies right now: None (not at all), -1 (the input
# stacks all groups task-major: batched) or g >= 0 (group g for the whole input).
BATCHED = -1


class _LoRAOutputHook:
    """Forward hook adding the banks' deltas to an ``nn.Linear``'s output.

    A callable object rather than a closure so that ``copy.deepcopy`` of the model
    (EMA, model soups) rebinds it to the *copied* banks and selector.
    """

    def __init__(self, banks) -> None:
        self.banks = banks

    def __call__(self, mod, args, output):
        x = args[0]
        for bank, scale, selector in self.banks:
            sel = selector()
            if sel is None:
                continue
            output = output + scale * bank.delta(x, None if sel == BATCHED else sel)
        return output


class _LoRAWeightDelta:
    """Dense weight delta of the banks for a functionally consumed weight (a callable
    object for the same deepcopy reason as :class:`_LoRAOutputHook`)."""

    def __init__(self, banks, owner: str) -> None:
        self.banks, self.owner = banks, owner

    def __call__(self) -> Optional[Tensor]:
        total = None
        for bank, scale, selector in self.banks:
            sel = selector()
            if sel is None:
                continue
            if sel == BATCHED:
                if bank.groups != 1:
                    raise RuntimeError(
                        f'{self.owner}: a per-task LoRA on a parametrised weight needs one '
                        'pass per task (this host cannot batch tasks)')
                sel = 0
            d = scale * bank.weight_delta(sel)
            total = d if total is None else total + d
        return total


def attach_lora(target, banks, owner) -> list:
    """Attach ``banks`` [(bank, scale, selector)] to one host LoRA target.

    Args:
        target: ``(module, None)`` for an ``nn.Linear`` called as a module (forward hook)
            or ``(module, param_name)`` for a functionally consumed weight (parametrisation).
        owner: name used in error messages.
    Returns:
        removable handles.
    """
    module, pname = target
    if pname is None:
        if not isinstance(module, nn.Linear):
            raise TypeError(f'{owner}: LoRA target {type(module).__name__} is not an nn.Linear')
        return [module.register_forward_hook(_LoRAOutputHook(list(banks)))]
    return [add_weight_delta(module, pname, _LoRAWeightDelta(list(banks), owner))]


def target_shape(target) -> tuple:
    """(in_features, out_features) of a LoRA target."""
    module, pname = target
    if pname is None:
        return module.in_features, module.out_features
    w = getattr(module, pname)
    return w.shape[1], w.shape[0]
