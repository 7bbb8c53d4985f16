"""Multi-domain classification (Visual Decathlon protocol) on one adapted CNN.

The domains are the backbone's "tasks": ``ConvMultiTaskBackbone`` with a
per-domain method (Modulation Adapters, depthwise sharing) keeps one frozen
base network and per-domain parameters; each domain has its own linear head
on the globally average-pooled last pyramid level (stride 32).

Batches: an image belongs to one domain, so only that domain's stream is run.
The model groups a batch by ``data_sample.metainfo['domain']`` and runs the
backbone once per domain present, with only that domain's stream
(``backbone(x, tasks=[domain])``). Mixed batches are therefore correct but cost
one backbone pass per domain in them; use ``DomainBatchSampler``
(``mtdense.datasets.multi_domain``) so that each batch holds one domain::

    train_dataloader = dict(batch_size=32, sampler=dict(type='DefaultSampler', shuffle=True),
                            batch_sampler=dict(type='DomainBatchSampler'), dataset=...)

The loss is the mean cross-entropy over the batch's samples (each sample counts
once, whatever its domain).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor

from mtdense.registry import MODELS

__all__ = ['MultiDomainClassifier', 'group_by_domain']

_IMAGENET_MEAN = [123.675, 116.28, 103.53]
_IMAGENET_STD = [58.395, 57.12, 57.375]


def group_by_domain(data_samples: Sequence[BaseDataElement],
                    domains: Sequence[str]) -> 'OrderedDict[str, List[int]]':
    """``{domain: [batch indices]}`` in order of first appearance; unknown domains raise."""
    groups: 'OrderedDict[str, List[int]]' = OrderedDict()
    for i, s in enumerate(data_samples):
        d = s.metainfo.get('domain')
        if d is None:
            raise KeyError(f'MultiDomainClassifier: data sample {i} '
                           f'({s.metainfo.get("img_path", "?")}) has no metainfo "domain"')
        if d not in domains:
            raise KeyError(f'MultiDomainClassifier: data sample {i} has domain {d!r}, not one of '
                           f'the model domains {list(domains)}')
        groups.setdefault(d, []).append(i)
    return groups


@MODELS.register_module()
class MultiDomainClassifier(BaseModel):
    """Per-domain linear heads on one adapted backbone.

    ``forward(inputs, data_samples, mode)``:

    * ``'loss'``: ``dict(loss_cls=mean CE)`` plus per-domain ``ce_<domain>`` (logged).
    * ``'predict'``: the data samples with ``pred_label`` (int64 scalar) and
      ``pred_score`` (softmax, (C_domain,)).
    * ``'tensor'``: ``{domain: logits (B_domain, C_domain)}`` (the samples of each
      domain in batch order).

    Args:
        backbone: config of a backbone with ``forward(x, tasks=[domain])``, e.g.
            ``ConvMultiTaskBackbone``; its ``tasks`` are filled in with ``domains``.
        domains: domain names.
        num_classes: ``{domain: C}``.
        dropout: dropout before the heads.
        label_smoothing: of the cross-entropy.
        data_preprocessor: default mmengine ``ImgDataPreprocessor`` with ImageNet
            mean/std (inputs are RGB, as ``LoadMultiTaskImage`` reads them).
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Union[dict, nn.Module], domains: Sequence[str],
                 num_classes: Mapping[str, int], dropout: float = 0.0,
                 label_smoothing: float = 0.0,
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='ImgDataPreprocessor', mean=_IMAGENET_MEAN,
                                     std=_IMAGENET_STD)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        domains = list(domains)
        if not domains or len(set(domains)) != len(domains):
            raise ValueError(f'MultiDomainClassifier: domains must be non-empty and unique, '
                             f'got {domains}')
        self.domains: List[str] = domains
        missing = [d for d in domains if d not in num_classes]
        extra = [d for d in num_classes if d not in domains]
        if missing or extra:
            raise KeyError(f'MultiDomainClassifier: num_classes must have exactly the domains '
                           f'{domains} (missing {missing}, unexpected {extra})')
        if any(int(num_classes[d]) < 2 for d in domains):
            raise ValueError(f'MultiDomainClassifier: every domain needs >= 2 classes, got '
                             f'{dict(num_classes)}')
        self.num_classes = {d: int(num_classes[d]) for d in domains}
        if isinstance(backbone, dict):
            backbone = copy.deepcopy(backbone)
            backbone.setdefault('tasks', list(domains))
            backbone = MODELS.build(backbone)
        if list(getattr(backbone, 'tasks', [])) != domains:
            raise ValueError(f'MultiDomainClassifier: backbone tasks '
                             f'{getattr(backbone, "tasks", None)} must equal domains {domains}')
        self.backbone = backbone
        channels = int(backbone.out_channels[-1])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.heads = nn.ModuleDict({d: nn.Linear(channels, self.num_classes[d]) for d in domains})
        self.label_smoothing = float(label_smoothing)

    # --------------------------------------------------------------- forward
    def forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if data_samples is None:
            raise ValueError('MultiDomainClassifier: data_samples (with metainfo "domain") are '
                             'required in every mode: the domain selects the stream and head')
        if len(data_samples) != inputs.shape[0]:
            raise ValueError(f'MultiDomainClassifier: {inputs.shape[0]} inputs but '
                             f'{len(data_samples)} data samples')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._logits(inputs, data_samples)[0]
        raise ValueError(f"MultiDomainClassifier: invalid mode {mode!r}; expected 'loss', "
                         "'predict' or 'tensor'")

    def extract_feat(self, inputs: Tensor, domain: str) -> Tensor:
        """Pooled stride-32 features of ``domain``'s stream: (B, C)."""
        feats = self.backbone(inputs, tasks=[domain])[domain]
        return feats[-1].mean(dim=(2, 3))

    def _logits(self, inputs: Tensor, data_samples: Sequence[BaseDataElement]):
        groups = group_by_domain(data_samples, self.domains)
        logits: Dict[str, Tensor] = OrderedDict()
        for d, idx in groups.items():
            x = inputs if len(idx) == inputs.shape[0] else \
                inputs[torch.as_tensor(idx, device=inputs.device)]
            logits[d] = self.heads[d](self.dropout(self.extract_feat(x, d)))
        return logits, groups

    def loss(self, inputs: Tensor, data_samples: Sequence[BaseDataElement]) -> Dict[str, Tensor]:
        logits, groups = self._logits(inputs, data_samples)
        total = inputs.new_zeros(())
        out: Dict[str, Tensor] = OrderedDict()
        for d, idx in groups.items():
            target = self._targets([data_samples[i] for i in idx], d).to(inputs.device)
            ce = F.cross_entropy(logits[d], target, reduction='sum',
                                 label_smoothing=self.label_smoothing)
            total = total + ce
            out[f'ce_{d}'] = ce.detach() / len(idx)
        out['loss_cls'] = total / inputs.shape[0]
        out.move_to_end('loss_cls', last=False)
        return out

    def _targets(self, samples: Sequence[BaseDataElement], domain: str) -> Tensor:
        labels = []
        for s in samples:
            if 'gt_label' not in s:
                raise KeyError(f'MultiDomainClassifier: sample {s.metainfo.get("img_path", "?")} '
                               'has no gt_label')
            y = int(torch.as_tensor(s.gt_label).reshape(-1)[0])
            if not 0 <= y < self.num_classes[domain]:
                raise ValueError(f'MultiDomainClassifier: label {y} of '
                                 f'{s.metainfo.get("img_path", "?")} is outside domain '
                                 f'{domain!r} classes 0..{self.num_classes[domain] - 1}')
            labels.append(y)
        return torch.as_tensor(labels, dtype=torch.long)

    def predict(self, inputs: Tensor,
                data_samples: Sequence[BaseDataElement]) -> List[BaseDataElement]:
        logits, groups = self._logits(inputs, data_samples)
        for d, idx in groups.items():
            scores = logits[d].softmax(dim=1)
            for row, i in enumerate(idx):
                data_samples[i].pred_score = scores[row].detach()
                data_samples[i].pred_label = scores[row].argmax().detach()
        return list(data_samples)

    def parameter_report(self) -> Dict[str, object]:
        """Counts of heads per domain plus the backbone's ``param_groups_report()``."""
        def n(module: nn.Module, trainable: bool = False) -> int:
            return int(sum(p.numel() for p in module.parameters()
                           if p.requires_grad or not trainable))

        report: Dict[str, object] = OrderedDict(total=n(self), trainable=n(self, True))
        report['heads'] = {d: n(self.heads[d]) for d in self.domains}
        if hasattr(self.backbone, 'param_groups_report'):
            report['backbone_report'] = self.backbone.param_groups_report()
        return report
