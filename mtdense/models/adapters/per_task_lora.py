"""Per-task LoRA (Hu et al., ICLR 2022) on attention qkv/proj and MLP fc1/fc2.

For every block, target weight W in {qkv, proj, fc1, fc2} and task t::

    y_t = x_t W^T + b + s * (x_t A_t) B_t,   A_t: in x r, B_t: r x out, B_t = 0 at init

Each task has its own stream (one backbone pass per task). Where the host's
linears are hookable the passes are batched (batch repeated T times, task-major,
LoRA products batched over tasks); for mmseg's ViT, whose attention weights are
consumed by ``nn.MultiheadAttention`` functionally, the weights are
parametrised and the method loops over tasks.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost
from mtdense.models.petl import BasePEFTMethod, repeat_tasks
from mtdense.registry import MODELS
from .lora import BATCHED, LoRABank, attach_lora, target_shape

LORA_TARGETS = ('qkv', 'proj', 'fc1', 'fc2')


def check_targets(targets: Sequence[str], owner: str) -> List[str]:
    targets = list(targets)
    bad = [t for t in targets if t not in LORA_TARGETS]
    if bad or not targets:
        raise ValueError(f'{owner}: targets={targets} must be a non-empty subset of {LORA_TARGETS}')
    return targets


@MODELS.register_module()
class PerTaskLoRA(BasePEFTMethod):
    """Per-task LoRA of rank ``rank`` on ``targets`` of every block.

    Args:
        tasks: task names.
        rank: r.
        scale: s (LoRA's alpha / r).
        targets: subset of ('qkv', 'proj', 'fc1', 'fc2').
    """

    task_specific = True

    def __init__(self,
                 tasks: Sequence[str],
                 rank: int = 4,
                 scale: float = 1.0,
                 targets: Sequence[str] = LORA_TARGETS,
                 train_norms: bool = False,
                 train_rel_pos: bool = False,
                 train_patch_embed: bool = False) -> None:
        super().__init__(tasks, train_norms, train_rel_pos, train_patch_embed)
        if rank <= 0:
            raise ValueError(f'PerTaskLoRA: rank must be positive, got {rank}')
        self.rank = int(rank)
        self.scale = float(scale)
        self.targets = check_targets(targets, 'PerTaskLoRA')
        self._active: Optional[int] = None

    def _build(self, host: BackboneHost) -> None:
        self.loop_tasks = host.attention_needs_parametrization
        self.banks = nn.ModuleDict()
        self._shapes = {}
        for b in host.blocks:
            for name in self.targets:
                tgt = b.linears[name]
                fin, fout = target_shape(tgt)
                self._shapes[(b.index, name)] = (fin, fout)
                bank = LoRABank(self.num_tasks, fin, fout, self.rank)
                self.banks[f'{b.index}_{name}'] = bank
                for h in attach_lora(tgt, [(bank, self.scale, self._selector)], 'PerTaskLoRA'):
                    self._register(h)

    def _selector(self):
        return BATCHED if self._active is None else self._active

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        host = self.host
        if not self.loop_tasks:
            outs = host.forward_main(repeat_tasks(x, self.num_tasks))
            return outs, [True] * len(outs)
        per_task = []
        try:
            for t in range(self.num_tasks):
                self._active = t
                per_task.append(host.forward_main(x))
        finally:
            self._active = None
        feats = [torch.cat([o[lvl] for o in per_task], 0) for lvl in range(len(per_task[0]))]
        return feats, [True] * len(feats)

    def expected_num_params(self) -> int:
        return sum(
            LoRABank.num_params(self.num_tasks, fin, fout, self.rank)
            for fin, fout in self._shapes.values())

    def task_param_counts(self) -> Dict[str, int]:
        n = sum(LoRABank.num_params(1, fin, fout, self.rank) for fin, fout in self._shapes.values())
        return {t: n for t in self.tasks}
