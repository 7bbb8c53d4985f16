"""Depth: pixel-pooled error statistics over pixels with valid ground truth."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ._utils import ArrayOrList, check_same_shape, check_state_keys, to_numpy

DEPTH_DELTAS = (1.25, 1.25 ** 2, 1.25 ** 3)


class DepthStats:
    """Pixel-pooled depth errors over pixels with ground truth > 0.

    * ``rmse`` = sqrt(mean (p − g)²), ``abs_rel`` = mean |p − g| / g: raw predictions;
    * ``log_rmse`` = sqrt(mean (ln p − ln g)²) and ``δ<1.25^k`` = % of pixels with
      max(p/g, g/p) < 1.25^k: predictions clamped to at least ``min_pred`` first, so a
      non-positive prediction counts as a (large) error instead of producing NaN/inf.

    Units: depth in the ground truth's unit (metres), δ scores in percent.
    """

    kind = 'depth'

    def __init__(self, min_pred: float = 1e-3) -> None:
        if not min_pred > 0:
            raise ValueError(f'min_pred must be > 0, got {min_pred!r}')
        self.min_pred = float(min_pred)
        self.count = 0
        self.sum_sq = 0.0
        self.sum_sq_log = 0.0
        self.sum_abs_rel = 0.0
        self.delta_counts = np.zeros(len(DEPTH_DELTAS), dtype=np.int64)

    def update(self, pred: Any, gt: Any) -> 'DepthStats':
        """Add one image (any shape): ``pred`` depth, ``gt`` depth with 0 = invalid."""
        pred, gt = to_numpy(pred, 'depth prediction'), to_numpy(gt, 'depth ground truth')
        check_same_shape(pred, gt, 'depth')
        gt = gt.astype(np.float64)
        if not np.isfinite(gt).all():
            raise ValueError('depth ground truth contains NaN/inf; invalid pixels must be 0')
        valid = gt > 0
        if not valid.any():
            return self
        g = gt[valid]
        p = pred[valid].astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError('depth prediction contains NaN/inf on valid pixels')
        pc = np.maximum(p, self.min_pred)
        ratio = np.maximum(pc / g, g / pc)
        self.count += int(g.size)
        self.sum_sq += float(np.square(p - g).sum())
        self.sum_sq_log += float(np.square(np.log(pc) - np.log(g)).sum())
        self.sum_abs_rel += float((np.abs(p - g) / g).sum())
        self.delta_counts += np.array([(ratio < d).sum() for d in DEPTH_DELTAS],
                                      dtype=np.int64)
        return self

    def merge(self, other: 'DepthStats') -> 'DepthStats':
        return self.add_state(other.state_dict())

    def state_dict(self) -> Dict[str, Any]:
        return {'min_pred': self.min_pred, 'count': self.count, 'sum_sq': self.sum_sq,
                'sum_sq_log': self.sum_sq_log, 'sum_abs_rel': self.sum_abs_rel,
                'delta_counts': self.delta_counts.copy()}

    def add_state(self, state: Dict[str, Any]) -> 'DepthStats':
        check_state_keys(state, ['min_pred', 'count', 'sum_sq', 'sum_sq_log', 'sum_abs_rel',
                                 'delta_counts'], 'DepthStats')
        if float(state['min_pred']) != self.min_pred:
            raise ValueError('DepthStats: cannot combine statistics with different min_pred')
        self.count += int(state['count'])
        self.sum_sq += float(state['sum_sq'])
        self.sum_sq_log += float(state['sum_sq_log'])
        self.sum_abs_rel += float(state['sum_abs_rel'])
        self.delta_counts += np.asarray(state['delta_counts'], dtype=np.int64)
        return self

    def compute(self) -> Dict[str, float]:
        """``rmse``, ``log_rmse``, ``abs_rel``, ``delta1..3`` (NaN if no valid pixel)."""
        names = ['delta1', 'delta2', 'delta3']
        if self.count == 0:
            return {k: float('nan') for k in ['rmse', 'log_rmse', 'abs_rel'] + names}
        n = self.count
        out = {'rmse': float(np.sqrt(self.sum_sq / n)),
               'log_rmse': float(np.sqrt(self.sum_sq_log / n)),
               'abs_rel': self.sum_abs_rel / n}
        out.update({k: float(100.0 * c / n) for k, c in zip(names, self.delta_counts)})
        return out


def depth_scores(preds: ArrayOrList, gts: ArrayOrList, min_pred: float = 1e-3
                 ) -> Dict[str, float]:
    """Depth ``rmse``, ``log_rmse``, ``abs_rel``, ``delta1`` (δ<1.25), ``delta2``, ``delta3``.

    Args:
        preds: depth maps (any shape, e.g. (H, W) or (N, H, W)) or a list of maps.
        gts: ground truth in the same layout; pixels with gt <= 0 are invalid.
        min_pred: clamp for predictions before logs and ratios (see :class:`DepthStats`).
    """
    stats = DepthStats(min_pred=min_pred)
    if isinstance(preds, (list, tuple)):
        if len(preds) != len(gts):
            raise ValueError(f'depth_scores: {len(preds)} predictions but {len(gts)} '
                             f'ground truths')
        for p, g in zip(preds, gts):
            stats.update(p, g)
    else:
        stats.update(preds, gts)
    return stats.compute()
