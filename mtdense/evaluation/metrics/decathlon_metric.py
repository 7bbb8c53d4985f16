"""``DecathlonMetric``: per-domain top-1 accuracy and the Visual Decathlon score S."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mtdense.registry import METRICS

from ..functional.decathlon import decathlon_score, load_decathlon_baselines, top1_accuracy

__all__ = ['DecathlonMetric']


def _scalar(value: Any, what: str, sample: Mapping) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'DecathlonMetric: {what} of {sample.get("img_path", "a sample")} '
                             f'must be a single label, got shape {tuple(value.shape)}')
        value = value.item()
    return int(value)


@METRICS.register_module()
class DecathlonMetric(BaseMetric):
    """Top-1 accuracy per domain and, with baselines, the Decathlon score.

    ``process`` keeps one ``(domain, correct)`` record per sample (mmengine gathers
    them across ranks, so results are exact under DDP). Each data sample (as
    written by ``MultiDomainClassifier.predict``) needs ``pred_label``,
    ``gt_label`` and the metainfo ``domain``; a ground truth < 0 (unlabelled test
    image) is an error.

    Returned keys (with the default prefix ``decathlon``): ``<domain>/top1``,
    ``mean_top1`` and, with ``baselines``, ``<domain>/S`` and ``S``
    (see :mod:`mtdense.evaluation.functional.decathlon`).

    Args:
        baselines: dict or JSON path of baseline errors per domain (None: no S).
        domains: domains that must be present (their order sets the output order);
            None: the domains seen.
        strict: with baselines, a baseline domain absent from the evaluation raises
            (False: logged, and S sums over the evaluated domains only).
        collect_device, prefix: as in ``mmengine.evaluator.BaseMetric``.
    """

    default_prefix: Optional[str] = 'decathlon'

    def __init__(self, baselines: Union[str, Mapping, None] = None,
                 domains: Optional[Sequence[str]] = None, strict: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.baselines = load_decathlon_baselines(baselines) if baselines is not None else None
        self.domains = list(domains) if domains is not None else None
        self.strict = bool(strict)

    def process(self, data_batch: Any, data_samples: Sequence[Mapping]) -> None:
        for s in data_samples:
            if not isinstance(s, Mapping):
                s = s.to_dict()
            for key in ('pred_label', 'gt_label', 'domain'):
                if key not in s:
                    raise KeyError(f'DecathlonMetric: data sample of {s.get("img_path", "?")} '
                                   f'has no {key!r} (keys: {sorted(s)})')
            gt = _scalar(s['gt_label'], 'gt_label', s)
            if gt < 0:
                raise ValueError(f'DecathlonMetric: {s.get("img_path", "a sample")} of domain '
                                 f'{s["domain"]!r} has no label (gt_label={gt}); unlabelled '
                                 'test splits cannot be scored here')
            pred = _scalar(s['pred_label'], 'pred_label', s)
            self.results.append((str(s['domain']), int(pred == gt)))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        correct: Dict[str, int] = OrderedDict()
        total: Dict[str, int] = OrderedDict()
        for domain, ok in results:
            correct[domain] = correct.get(domain, 0) + ok
            total[domain] = total.get(domain, 0) + 1
        if self.domains is not None:
            missing = [d for d in self.domains if d not in total]
            extra = [d for d in total if d not in self.domains]
            if missing or extra:
                raise ValueError(f'DecathlonMetric: evaluated domains {list(total)} differ from '
                                 f'domains={self.domains} (missing {missing}, unexpected {extra})')
            order = self.domains
        else:
            order = list(total)
        if not order:
            raise ValueError('DecathlonMetric: no samples were evaluated')
        top1 = OrderedDict((d, top1_accuracy(correct[d], total[d])) for d in order)
        metrics: Dict[str, float] = OrderedDict()
        for d in order:
            metrics[f'{d}/top1'] = top1[d]
        metrics['mean_top1'] = sum(top1.values()) / len(top1)
        if self.baselines is not None:
            absent = [d for d in self.baselines if d not in top1]
            if absent:
                msg = (f'DecathlonMetric: baseline domains {absent} were not evaluated; S sums '
                       f'over {list(top1)} only')
                if self.strict:
                    raise ValueError(msg + ' (pass strict=False to allow it)')
                print_log(msg, logger='current', level=30)
            score, per_domain = decathlon_score({d: 100.0 - a for d, a in top1.items()},
                                                self.baselines)
            for d in order:
                metrics[f'{d}/S'] = per_domain[d]
            metrics['S'] = score
        return dict(metrics)
