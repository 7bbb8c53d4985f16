"""Saliency: per-threshold, per-image IoU / precision / recall; mIoU and maxF."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ._utils import ArrayOrList, check_same_shape, check_state_keys, iter_pairs, safe_ratio, \
    to_numpy


def default_saliency_thresholds() -> np.ndarray:
    """The 15 thresholds ``linspace(0.2, 0.9, 15)`` applied to probabilities."""
    return np.linspace(0.2, 0.9, 15)


class SaliencyStats:
    """Sufficient statistics for saliency over a split.

    Per threshold τ a pixel is predicted salient iff ``probability > τ`` (strictly; the
    same rule that binarises the distilled ground truth at 0.5). Per image, over pixels
    whose ground truth is not ``ignore_index``:

    * IoU = TP / (TP + FP + FN), precision = TP / (TP + FP), recall = TP / (TP + FN);
    * a 0/0 ratio is **1** when prediction and ground truth are both empty (a perfect
      answer) and **0** otherwise (e.g. nothing predicted on a salient image gives
      precision 0 and recall 0). ``empty_pr=0`` scores the precision and recall of
      the both-empty case 0 instead (IoU stays 1): the ASTMT-lineage evaluation code
      (ASTMT, MTI-Net, MTLoRA, ...) computes ``tp / (tp + fp + 1e-12)``, so its
      published maxF is comparable only under this convention;
    * images without any non-ignored pixel contribute nothing (not even to the count).

    The image means IoU̅(τ), P̄(τ), R̄(τ) give ``mIoU = max_τ IoU̅(τ)`` and
    ``maxF = max_τ 2 P̄ R̄ / (P̄ + R̄)`` (0 where P̄ + R̄ = 0). With ``pooled_beta2``
    (e.g. 0.3, the salient-object-detection convention) ``maxF`` is instead
    ``max_τ (1 + β²) P R / (β² P + R)`` with P, R pooled over all pixels of the split.
    Pixel-pooled TP/FP/FN are always kept, so both conventions come from one pass.
    Scores are percentages.
    """

    kind = 'binary'

    def __init__(self, thresholds: Optional[Sequence[float]] = None, ignore_index: int = 255,
                 pooled_beta2: Optional[float] = None, empty_pr: float = 1.0) -> None:
        thr = default_saliency_thresholds() if thresholds is None else np.asarray(
            thresholds, dtype=np.float64)
        if thr.ndim != 1 or thr.size == 0:
            raise ValueError(f'thresholds must be a non-empty 1-D sequence, got {thresholds!r}')
        if pooled_beta2 is not None and not pooled_beta2 > 0:
            raise ValueError(f'pooled_beta2 must be > 0 or None, got {pooled_beta2!r}')
        if empty_pr not in (0, 1):
            raise ValueError(f'empty_pr (precision/recall when prediction and ground truth are '
                             f'both empty) must be 1 or 0, got {empty_pr!r}')
        self.thresholds = thr
        self.ignore_index = ignore_index
        self.empty_pr = float(empty_pr)
        self.pooled_beta2 = pooled_beta2
        n = thr.size
        self.num_images = 0
        self.sum_iou = np.zeros(n)
        self.sum_precision = np.zeros(n)
        self.sum_recall = np.zeros(n)
        self.tp = np.zeros(n, dtype=np.int64)
        self.fp = np.zeros(n, dtype=np.int64)
        self.fn = np.zeros(n, dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> 'SaliencyStats':
        """Add one image: ``pred`` probabilities in [0, 1], ``gt`` in {0, 1, ignore}."""
        pred, gt = to_numpy(pred, 'saliency prediction'), to_numpy(gt, 'saliency ground truth')
        check_same_shape(pred, gt, 'saliency')
        valid = gt != self.ignore_index
        g = gt[valid]
        if g.size == 0:
            return self
        if not np.isin(g, (0, 1)).all():
            bad = np.unique(g[~np.isin(g, (0, 1))])[:5]
            raise ValueError(f'saliency ground truth must be 0, 1 or {self.ignore_index}; '
                             f'found {bad.tolist()}')
        p = pred[valid].astype(np.float64)
        if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
            raise ValueError(f'saliency predictions must be probabilities in [0, 1] (apply the '
                             f'sigmoid to the logit); found range [{np.nanmin(p)}, '
                             f'{np.nanmax(p)}]')
        g = g.astype(bool)
        pos = p[None, :] > self.thresholds[:, None]  # (T, N)
        tp = (pos & g[None, :]).sum(1)
        fp = pos.sum(1) - tp
        fn = int(g.sum()) - tp
        both_empty = (tp + fp + fn) == 0
        self.sum_iou += safe_ratio(tp, tp + fp + fn, both_empty)
        pr_empty = both_empty if self.empty_pr else np.zeros_like(both_empty)
        self.sum_precision += safe_ratio(tp, tp + fp, pr_empty)
        self.sum_recall += safe_ratio(tp, tp + fn, pr_empty)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.num_images += 1
        return self

    def _check_compatible(self, thresholds: np.ndarray) -> None:
        if thresholds.shape != self.thresholds.shape or not np.array_equal(
                thresholds, self.thresholds):
            raise ValueError('SaliencyStats: cannot combine statistics computed with different '
                             'thresholds')

    def merge(self, other: 'SaliencyStats') -> 'SaliencyStats':
        self._check_compatible(other.thresholds)
        return self.add_state(other.state_dict())

    def state_dict(self) -> Dict[str, Any]:
        return {'thresholds': self.thresholds.copy(), 'num_images': self.num_images,
                'sum_iou': self.sum_iou.copy(), 'sum_precision': self.sum_precision.copy(),
                'sum_recall': self.sum_recall.copy(), 'tp': self.tp.copy(),
                'fp': self.fp.copy(), 'fn': self.fn.copy()}

    def add_state(self, state: Dict[str, Any]) -> 'SaliencyStats':
        keys = ['thresholds', 'num_images', 'sum_iou', 'sum_precision', 'sum_recall', 'tp',
                'fp', 'fn']
        check_state_keys(state, keys, 'SaliencyStats')
        self._check_compatible(np.asarray(state['thresholds']))
        self.num_images += int(state['num_images'])
        for k in keys[2:]:
            getattr(self, k).__iadd__(np.asarray(state[k]))
        return self

    def per_threshold(self) -> Dict[str, np.ndarray]:
        """Image-mean IoU, precision, recall, F (fractions) and pooled F_β per threshold."""
        n = max(self.num_images, 1)
        iou, prec, rec = self.sum_iou / n, self.sum_precision / n, self.sum_recall / n
        f = safe_ratio(2 * prec * rec, prec + rec, np.zeros_like(prec, dtype=bool))
        out = {'thresholds': self.thresholds, 'iou': iou, 'precision': prec, 'recall': rec,
               'f': f}
        if self.pooled_beta2 is not None:
            b2 = self.pooled_beta2
            none = (self.tp + self.fp + self.fn) == 0
            pp = safe_ratio(self.tp, self.tp + self.fp, none)
            pr = safe_ratio(self.tp, self.tp + self.fn, none)
            out['pooled_precision'], out['pooled_recall'] = pp, pr
            out['pooled_f_beta'] = safe_ratio((1 + b2) * pp * pr, b2 * pp + pr, none)
        return out

    def compute(self) -> Dict[str, float]:
        """``mIoU`` and ``maxF`` in percent (NaN if no image had annotated pixels)."""
        if self.num_images == 0:
            return {'mIoU': float('nan'), 'maxF': float('nan')}
        pt = self.per_threshold()
        f = pt['pooled_f_beta'] if self.pooled_beta2 is not None else pt['f']
        return {'mIoU': float(100.0 * pt['iou'].max()), 'maxF': float(100.0 * f.max())}


def saliency_scores(preds: ArrayOrList, gts: ArrayOrList,
                    thresholds: Optional[Sequence[float]] = None, ignore_index: int = 255,
                    pooled_beta2: Optional[float] = None, empty_pr: float = 1.0
                    ) -> Dict[str, Any]:
    """Saliency ``mIoU`` and ``maxF`` (percent), see :class:`SaliencyStats`.

    Args:
        preds: probabilities: one (H, W) map, a stack (N, H, W) of N images, or a list.
        gts: ground truth {0, 1, ignore_index} in the same layout.
        thresholds: defaults to ``linspace(0.2, 0.9, 15)``.
        pooled_beta2: None: maxF from image-mean P̄, R̄ with β = 1 (default);
            a number (e.g. 0.3): pixel-pooled F_β.
        empty_pr: precision and recall of a both-empty image (1, or 0 as ASTMT).

    Returns:
        ``{'mIoU', 'maxF', 'per_threshold': {...arrays}}``.
    """
    stats = SaliencyStats(thresholds, ignore_index=ignore_index, pooled_beta2=pooled_beta2,
                          empty_pr=empty_pr)
    for p, g in iter_pairs(preds, gts, image_ndim=2, what='saliency_scores'):
        stats.update(p, g)
    out: Dict[str, Any] = dict(stats.compute())
    out['per_threshold'] = stats.per_threshold()
    return out
