"""Core of the transformer PETL family: the common base of its methods.

A method is built from ``peft=dict(type=..., **kwargs)`` by
:class:`~mtdense.models.backbones.AdaptedBackbone`, which then calls
:meth:`BasePEFTMethod.attach` once with the backbone *host* (see
``mtdense/models/petl/host.py``). A method

* creates its own parameters (they live in the method module, so the wrapped
  backbone's state-dict keys stay those of mmseg/timm),
* attaches to the host through forward hooks (or a parametrisation where a
  weight is consumed functionally),
* says which backbone parameters it trains (:meth:`backbone_trainable_names`),
* computes the per-level features in :meth:`forward_features`, and
* reports its parameter count from a closed formula
  (:meth:`expected_num_params`), checked against the modules in the tests.

Feature layout returned by :meth:`forward_features`: a list with one tensor
per backbone level and a parallel list of flags; a flagged tensor stacks the
tasks along the batch, task-major, (T*B, C, H, W) (the convention of
``mtdense/models/petl/stacking.py``); an unflagged one (B, C, H, W) is shared by
every task.
"""
from __future__ import annotations

import functools
from typing import Dict, List, Sequence, Set, Tuple

import torch.nn as nn
from torch import Tensor

from .host import BackboneHost

_ACTIVATIONS = {
    'gelu': nn.GELU,
    'relu': nn.ReLU,
    'silu': nn.SiLU,
    'identity': nn.Identity,
}


def build_activation(name: str, owner: str) -> nn.Module:
    """``'gelu' | 'relu' | 'silu' | 'identity'`` -> module; clear error otherwise."""
    if name not in _ACTIVATIONS:
        raise ValueError(f'{owner}: act={name!r} is not one of {sorted(_ACTIVATIONS)}')
    return _ACTIVATIONS[name]()


def per_stage(value, num_stages: int, key: str, owner: str) -> List[int]:
    """Expand an int or a per-stage sequence of positive ints to ``num_stages`` values."""
    if isinstance(value, int) and not isinstance(value, bool):
        values = [value] * num_stages
    elif isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
        if len(value) != num_stages:
            raise ValueError(f'{owner}: {key}={list(value)} has {len(value)} entries, the backbone '
                             f'has {num_stages} stage(s)')
        values = list(value)
    else:
        raise TypeError(f'{owner}: {key} must be an int or a list of ints (one per stage), '
                        f'got {value!r}')
    if any(v <= 0 for v in values):
        raise ValueError(f'{owner}: {key}={value!r} must be positive')
    return values


def ratio_bottlenecks(dims: Sequence[int], ratio: float) -> List[int]:
    """Per-stage bottleneck r_s = max(1, round(d_s * ratio))."""
    return [max(1, int(round(d * ratio))) for d in dims]


def check_bottleneck_args(bottleneck, bottleneck_ratio, owner: str) -> None:
    """An adapter's width is given one way: ``bottleneck`` (int or one per stage) or
    ``bottleneck_ratio`` (> 0) of each stage's width."""
    if bottleneck is not None and bottleneck_ratio is not None:
        raise ValueError(f'{owner}: give bottleneck or bottleneck_ratio, not both')
    if bottleneck_ratio is not None and not bottleneck_ratio > 0:
        raise ValueError(f'{owner}: bottleneck_ratio must be > 0, got {bottleneck_ratio}')


def stage_bottlenecks(dims: Sequence[int], bottleneck, bottleneck_ratio: float,
                      owner: str) -> List[int]:
    """Per-stage bottleneck widths: ``bottleneck`` expanded to the stages, or the ratio."""
    if bottleneck is None:
        return ratio_bottlenecks(dims, bottleneck_ratio)
    return per_stage(bottleneck, len(dims), 'bottleneck', owner)


class BasePEFTMethod(nn.Module):
    """Base class; see the module docstring for the contract.

    Args:
        tasks: task names (order fixes the task index).
        train_norms: also train every normalisation layer of the backbone.
        train_rel_pos: also train the relative position bias tables (Swin).
        train_patch_embed: also train the patch embedding and the absolute position
            embedding / class token (ViT).
    """

    #: True when different tasks may receive different features.
    task_specific: bool = False

    def __init__(self,
                 tasks: Sequence[str],
                 train_norms: bool = False,
                 train_rel_pos: bool = False,
                 train_patch_embed: bool = False) -> None:
        super().__init__()
        if not tasks:
            raise ValueError(f'{type(self).__name__}: tasks must be a non-empty list')
        self.tasks: List[str] = list(tasks)
        self.train_norms = bool(train_norms)
        self.train_rel_pos = bool(train_rel_pos)
        self.train_patch_embed = bool(train_patch_embed)
        self._hook_handles: List = []

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    # The host is owned by AdaptedBackbone; keep an unregistered reference so its
    # parameters are not registered (and saved) twice.
    @property
    def host(self) -> BackboneHost:
        host = self.__dict__.get('_host')
        if host is None:
            raise RuntimeError(f'{type(self).__name__} is not attached to a backbone host')
        return host

    def attach(self, host: BackboneHost) -> None:
        """Build parameters and register hooks on ``host`` (called once)."""
        if self.__dict__.get('_host') is not None:
            raise RuntimeError(f'{type(self).__name__} is already attached')
        object.__setattr__(self, '_host', host)
        self._build(host)

    def _build(self, host: BackboneHost) -> None:
        """Subclass hook: create parameters, register hooks."""

    def _register(self, handle) -> None:
        self._hook_handles.append(handle)

    def _hook_mlp_and_block(self, host: BackboneHost) -> None:
        """Adapter-style methods: ``self._mlp_hook(index, module, args, kwargs, output)`` sees
        each block's MLP input, ``self._block_hook(index, module, args, output)`` may
        replace the block's output."""
        for b in host.blocks:
            self._register(
                b.mlp.register_forward_hook(
                    functools.partial(self._mlp_hook, b.index), with_kwargs=True))
            self._register(
                b.module.register_forward_hook(functools.partial(self._block_hook, b.index)))

    def detach(self) -> None:
        """Remove every hook this method registered."""
        for h in self._hook_handles:
            h.remove()
        self._hook_handles.clear()

    # ------------------------------------------------------------- training
    def backbone_trainable_names(self, host: BackboneHost) -> Set[str]:
        """Backbone parameter names this method trains (beyond the switches)."""
        return set()

    def task_param_counts(self) -> Dict[str, int]:
        """Trainable parameters used by one task only (every other one is shared)."""
        return {t: 0 for t in self.tasks}

    def expected_num_params(self) -> int:
        """Trainable parameters this method owns, from its closed-form count."""
        raise NotImplementedError

    def extra_backbones(self) -> List[nn.Module]:
        """Additional full backbone copies owned by the method (per-task fine-tuning)."""
        return []

    # -------------------------------------------------------------- forward
    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        """Per-level features; see the module docstring for the layout."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        return self.forward_features(x)

    # ------------------------------------------------------------- helpers
    def _tap_blocks(self, host: BackboneHost, tap_blocks) -> List[int]:
        """Resolve ``'last'`` / a list of global block indices to level-output blocks.

        A negative index counts from the end of the level-output blocks (``[-2, -1]``: the
        last two levels' blocks, whatever the depths)."""
        valid = host.default_tap_blocks()
        if tap_blocks == 'last':
            return list(valid)
        if isinstance(tap_blocks, (list, tuple)) and all(isinstance(b, int) for b in tap_blocks):
            bad = [b for b in tap_blocks if b < -len(valid) or (b >= 0 and b not in valid)]
            if bad:
                raise ValueError(
                    f'{type(self).__name__}: tap_blocks={list(tap_blocks)} contains {bad}, which '
                    f'are not blocks whose output is a backbone output; valid blocks: {valid} '
                    f'(or -1 .. -{len(valid)} from the end)')
            tap_blocks = [valid[b] if b < 0 else b for b in tap_blocks]
            if len(set(tap_blocks)) != len(tap_blocks):
                raise ValueError(
                    f'{type(self).__name__}: tap_blocks={list(tap_blocks)} has duplicates')
            return sorted(tap_blocks)
        raise TypeError(f"{type(self).__name__}: tap_blocks must be 'last' or a list of block "
                        f'indices, got {tap_blocks!r}')

    @staticmethod
    def _hw(feat: Tensor) -> Tuple[int, int]:
        return int(feat.shape[-2]), int(feat.shape[-1])

    def _check_batch(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'{type(self).__name__}: expected images (B, C, H, W), got shape '
                             f'{tuple(x.shape)}')

