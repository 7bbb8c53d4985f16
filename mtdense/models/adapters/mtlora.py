"""MTLoRA-style shared + task-specific low-rank adaptation (after Agiza et al., CVPR 2024).

What we implement (our reading of MTLoRA's "task-agnostic" TA-LoRA and
"task-specific" TS-LoRA, in the variant where task paths keep the shared delta):

* every block: a shared LoRA (rank ``rank``) on qkv, proj, fc1, fc2::

      y = x W^T + b + s_sh * (x A) B

  and the shared stream continues through the whole backbone (it feeds the
  next stage);
* at the tapped block of every level (default: the last block of each Swin
  stage / the ViT out_indices) the block is evaluated once more per task, from
  the same shared input, with an extra per-task LoRA (rank ``task_rank``) on the
  same linears::

      y_t = x_t W^T + b + s_sh * (x_t A) B + s_t * (x_t A_t) B_t

  giving task-specific level outputs (the backbone's output transform applied
  to the task block outputs). The T extra block evaluations are batched
  (input repeated T times, task-major; per-task products batched) except on
  mmseg's ViT, where parametrised attention weights force a loop over tasks.

Defaults follow the MTLoRA r=64 configuration: shared rank 64, task rank 4,
scales 4.0 (their "scale" multiplies the product directly). The MTLoRA paper
also trains norms, relative position tables and the patch embedding: set the
``train_*`` switches for that setting (off by default, like every method here).
"""
from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.registry import MODELS
from mtdense.models.backbones.base_host import BackboneHost
from .base import BasePEFTMethod, repeat_tasks
from .lora import BATCHED, LoRABank, attach_lora, target_shape
from .per_task_lora import LORA_TARGETS, check_targets


@MODELS.register_module()
class MTLoRA(BasePEFTMethod):
    """Shared LoRA on all blocks + task LoRA at tapped blocks (see module docstring).

    Args:
        tasks: task names.
        rank: shared rank.
        task_rank: per-task rank at tapped blocks.
        shared_scale, task_scale: multipliers of the shared / task products.
        targets: subset of ('qkv', 'proj', 'fc1', 'fc2').
        tap_blocks: 'last' or a list of level-output block indices.
    """

    task_specific = True

    def __init__(self,
                 tasks: Sequence[str],
                 rank: int = 64,
                 task_rank: int = 4,
                 shared_scale: float = 4.0,
                 task_scale: float = 4.0,
                 targets: Sequence[str] = LORA_TARGETS,
                 tap_blocks='last',
                 train_norms: bool = False,
                 train_rel_pos: bool = False,
                 train_patch_embed: bool = False) -> None:
        super().__init__(tasks, train_norms, train_rel_pos, train_patch_embed)
        if rank <= 0 or task_rank <= 0:
            raise ValueError(
                f'MTLoRA: rank and task_rank must be positive, got {rank}, {task_rank}')
        self.rank, self.task_rank = int(rank), int(task_rank)
        self.shared_scale, self.task_scale = float(shared_scale), float(task_scale)
        self.targets = check_targets(targets, 'MTLoRA')
        self.tap_blocks_cfg = tap_blocks
        self._task_mode = False
        self._active: Optional[int] = None

    def _build(self, host: BackboneHost) -> None:
        self.loop_tasks = host.attention_needs_parametrization
        self.taps = self._tap_blocks(host, self.tap_blocks_cfg)
        self.shared = nn.ModuleDict()
        self.task = nn.ModuleDict()
        self._shapes = {}
        for b in host.blocks:
            for name in self.targets:
                tgt = b.linears[name]
                fin, fout = target_shape(tgt)
                self._shapes[(b.index, name)] = (fin, fout)
                shared = LoRABank(1, fin, fout, self.rank)
                self.shared[f'{b.index}_{name}'] = shared
                banks = [(shared, self.shared_scale, self._shared_selector)]
                if b.index in self.taps:
                    bank = LoRABank(self.num_tasks, fin, fout, self.task_rank)
                    self.task[f'{b.index}_{name}'] = bank
                    banks.append((bank, self.task_scale, self._task_selector))
                for h in attach_lora(tgt, banks, 'MTLoRA'):
                    self._register(h)
            if b.index in self.taps:
                self._register(
                    b.module.register_forward_hook(
                        functools.partial(self._tap_hook, b.index), with_kwargs=True))
        self._task_out: Dict[int, Tensor] = {}

    def _shared_selector(self):
        return 0

    def _task_selector(self):
        if not self._task_mode:
            return None
        return BATCHED if self._active is None else self._active

    def _tap_hook(self, index: int, module: nn.Module, args: tuple, kwargs: dict, output: Tensor):
        if self._task_mode:
            return None  # the per-task re-evaluation below
        x, rest = args[0], args[1:]
        self._task_mode = True
        try:
            if self.loop_tasks:
                outs = []
                for t in range(self.num_tasks):
                    self._active = t
                    outs.append(module(x, *rest, **kwargs))
                out = torch.cat(outs, 0)
            else:
                out = module(repeat_tasks(x, self.num_tasks), *rest, **kwargs)
        finally:
            self._task_mode = False
            self._active = None
        self._task_out[index] = out
        return None

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        host = self.host
        self._task_out.clear()
        try:
            outs = host.forward_main(x)
            feats, flags = [], []
            for lvl, ref in enumerate(host.levels):
                z = self._task_out.pop(ref.block_index, None)
                if z is None:
                    feats.append(outs[lvl])
                    flags.append(False)
                else:
                    feats.append(host.output_transform(lvl, z, self._hw(outs[lvl])))
                    flags.append(True)
        finally:
            self._task_out.clear()
        return feats, flags

    def expected_num_params(self) -> int:
        n = 0
        for (index, _), (fin, fout) in self._shapes.items():
            n += LoRABank.num_params(1, fin, fout, self.rank)
            if index in self.taps:
                n += LoRABank.num_params(self.num_tasks, fin, fout, self.task_rank)
        return n

    def task_param_counts(self) -> Dict[str, int]:
        n = sum(
            LoRABank.num_params(1, fin, fout, self.task_rank)
            for (index, _), (fin, fout) in self._shapes.items() if index in self.taps)
        return {t: n for t in self.tasks}
