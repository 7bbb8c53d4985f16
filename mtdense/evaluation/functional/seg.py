"""Semantic segmentation / human parts: confusion matrix, IoU, mIoU, pixel accuracy."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ._utils import ArrayOrList, add_sparse, check_same_shape, check_state_keys, iter_pairs, \
    sparse_counts, to_numpy


class SegStats:
    """Confusion matrix over all non-ignored pixels of a split.

    ``confusion[g, p]`` counts pixels with ground truth ``g`` predicted as ``p``.
    IoU_c = TP / (TP + FP + FN). A class with TP + FP + FN = 0 (neither annotated nor
    predicted anywhere) counts **0** in the mean when ``nan_to_zero`` (the multi-task
    learning convention) and is left out of the mean otherwise (mmseg's nanmean).
    Pixels whose ground truth is ``ignore_index`` are skipped, so an image annotated
    all-``ignore_index`` (a human-parts image without people) contributes nothing.
    Scores are percentages.
    """

    kind = 'seg'

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 nan_to_zero: bool = True) -> None:
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.nan_to_zero = nan_to_zero
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_images = 0  # images with at least one annotated pixel

    def update(self, pred: Any, gt: Any) -> 'SegStats':
        """Add one image (or any array of pixels): ``pred`` labels, ``gt`` labels."""
        pred, gt = to_numpy(pred, 'seg prediction'), to_numpy(gt, 'seg ground truth')
        check_same_shape(pred, gt, 'seg')
        if not np.issubdtype(pred.dtype, np.integer):
            raise TypeError(f'seg prediction must hold integer class labels, got dtype '
                            f'{pred.dtype} (take the argmax of the logits first)')
        valid = gt != self.ignore_index
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if g.size == 0:
            return self
        C = self.num_classes
        for arr, what in ((g, 'ground-truth'), (p, 'predicted')):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= C:
                raise ValueError(f'seg: {what} labels must lie in [0, {C}) or be the ignore '
                                 f'value {self.ignore_index}; found values in [{lo}, {hi}]')
        self.confusion += np.bincount(g * C + p, minlength=C * C).reshape(C, C)
        self.num_images += 1
        return self

    def merge(self, other: 'SegStats') -> 'SegStats':
        if other.num_classes != self.num_classes:
            raise ValueError(f'cannot merge SegStats with {other.num_classes} classes into '
                             f'one with {self.num_classes}')
        self.confusion += other.confusion
        self.num_images += other.num_images
        return self

    def state_dict(self) -> Dict[str, Any]:
        """Compact, additive record (sparse confusion matrix) for ``BaseMetric.results``."""
        return {'num_classes': self.num_classes, 'num_images': self.num_images,
                'confusion': sparse_counts(self.confusion.reshape(-1))}

    def add_state(self, state: Dict[str, Any]) -> 'SegStats':
        check_state_keys(state, ['num_classes', 'num_images', 'confusion'], 'SegStats')
        if int(state['num_classes']) != self.num_classes:
            raise ValueError(f'SegStats: state has {state["num_classes"]} classes, '
                             f'expected {self.num_classes}')
        add_sparse(self.confusion, state['confusion'], 'SegStats.confusion')
        self.num_images += int(state['num_images'])
        return self

    def iou(self) -> np.ndarray:
        """Per-class IoU in percent; NaN for classes neither annotated nor predicted."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, 100.0 * tp / np.maximum(union, 1), np.nan)

    def compute(self) -> Dict[str, float]:
        """``mIoU`` and ``pixAcc`` (percent). NaN if no pixel was annotated."""
        total = int(self.confusion.sum())
        if total == 0:
            return {'mIoU': float('nan'), 'pixAcc': float('nan')}
        iou = self.iou()
        miou_ = np.nan_to_num(iou, nan=0.0).mean() if self.nan_to_zero else np.nanmean(iou)
        pix_acc = 100.0 * np.trace(self.confusion) / total
        return {'mIoU': float(miou_), 'pixAcc': float(pix_acc)}


def miou(preds: ArrayOrList, gts: ArrayOrList, num_classes: int, ignore_index: int = 255,
         nan_to_zero: bool = True) -> Dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU (all percent) of label maps.

    Args:
        preds: predicted labels: one (H, W) map, a stack (N, H, W), or a list of maps.
        gts: ground-truth labels in the same layout; ``ignore_index`` pixels are skipped.
        num_classes: number of classes C (labels 0..C-1).
        ignore_index: ignored ground-truth value.
        nan_to_zero: classes neither annotated nor predicted count 0 in the mean
            (multi-task convention, default); False: left out of the mean (mmseg).

    Returns:
        ``{'mIoU': float, 'pixAcc': float, 'IoU': np.ndarray (C,), 'confusion': (C, C)}``.
    """
    stats = SegStats(num_classes, ignore_index=ignore_index, nan_to_zero=nan_to_zero)
    for p, g in iter_pairs(preds, gts, image_ndim=2, what='miou'):
        stats.update(p, g)
    out: Dict[str, Any] = dict(stats.compute())
    out['IoU'] = stats.iou()
    out['confusion'] = stats.confusion.copy()
    return out
