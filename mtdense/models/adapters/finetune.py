"""Baselines without added modules: full / single-task fine-tuning, decoder-only, BitFit."""
from __future__ import annotations

import copy
from typing import Dict, List, Set, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost
from mtdense.models.petl import BasePEFTMethod
from mtdense.registry import MODELS


class _SharedStream(BasePEFTMethod):
    """One backbone pass; every task gets the same features."""

    task_specific = False

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        outs = self.host.forward_main(x)
        return outs, [False] * len(outs)

    def expected_num_params(self) -> int:
        params = dict(self.host.backbone.named_parameters())
        return int(sum(params[n].numel() for n in self.backbone_trainable_names(self.host)))


@MODELS.register_module()
class FullFineTune(_SharedStream):
    """Multi-task full fine-tuning: one shared, fully trainable backbone.

    features_t = f(x; W) for every task t; trains all of W.
    """

    def backbone_trainable_names(self, host: BackboneHost) -> Set[str]:
        return {n for n, _ in host.backbone.named_parameters()}


@MODELS.register_module()
class DecoderOnly(_SharedStream):
    """Frozen backbone, shared features: features_t = f(x; W_pretrained); trains nothing here
    (only heads/neck, plus the optional norm / rel-pos / patch-embed switches)."""


@MODELS.register_module()
class BitFit(_SharedStream):
    """BitFit (Ben Zaken et al. 2022): train only bias terms, shared by all tasks.

    Trains every backbone parameter whose name ends in ``bias`` (linear, conv,
    attention ``in_proj_bias`` and normalisation biases).
    """

    def backbone_trainable_names(self, host: BackboneHost) -> Set[str]:
        return {n for n, _ in host.backbone.named_parameters() if n.endswith('bias')}


@MODELS.register_module()
class SingleTaskFineTune(BasePEFTMethod):
    """Single-task full fine-tuning: one fully trainable backbone copy per task.

    features_t = f(x; W_t), W_t initialised from the same weights; T backbone passes.
    Task 0 uses the host's backbone, tasks 1..T-1 deep copies made after the checkpoint
    was loaded. Costs T x the backbone's parameters and compute.
    """

    task_specific = True

    def _build(self, host: BackboneHost) -> None:
        self.copies = nn.ModuleList([copy.deepcopy(host.backbone) for _ in self.tasks[1:]])

    def backbone_trainable_names(self, host: BackboneHost) -> Set[str]:
        return {n for n, _ in host.backbone.named_parameters()}

    def extra_backbones(self) -> List[nn.Module]:
        return list(self.copies)

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        host = self.host
        per_task = [host.forward_main(x)]
        per_task += [host.forward_main(x, backbone=bb) for bb in self.copies]
        feats = [
            torch.cat([outs[lvl] for outs in per_task], dim=0) for lvl in range(len(per_task[0]))
        ]
        return feats, [True] * len(feats)

    def expected_num_params(self) -> int:
        return self.num_tasks * int(sum(p.numel() for p in self.host.backbone.parameters()))

    def backbone_task_counts(self) -> Dict[str, int]:
        n = int(sum(p.numel() for p in self.host.backbone.parameters()))
        return {t: n for t in self.tasks}
