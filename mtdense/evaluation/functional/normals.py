"""Surface normals: angular error statistics pooled over valid pixels."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from ._utils import ArrayOrList, add_sparse, check_same_shape, check_state_keys, sparse_counts, \
    to_numpy

NORMALS_THRESHOLDS = (11.25, 22.5, 30.0)


def angular_error(pred: np.ndarray, gt: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    """Angle in degrees between normal vectors, ``2·atan2(‖p̂−ĝ‖, ‖p̂+ĝ‖)``.

    Both inputs are normalised first (a zero vector stays zero, which gives 90°).
    This form is accurate at all angles, unlike ``acos`` of the dot product near 0°/180°.
    """
    p = np.moveaxis(np.asarray(pred, dtype=np.float64), channel_axis, -1)
    g = np.moveaxis(np.asarray(gt, dtype=np.float64), channel_axis, -1)
    p = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
    return np.degrees(2.0 * np.arctan2(np.linalg.norm(p - g, axis=-1),
                                       np.linalg.norm(p + g, axis=-1)))


class NormalsStats:
    """Pixel-pooled angular error over pixels whose ground-truth normal is non-zero.

    Keeps the count, the sum and the sum of squares of the angle (mean = ``mErr``,
    true root-mean-square = ``rmse``), exact counts below 11.25°, 22.5°, 30° (strict
    ``<``) and a histogram with ``bin_width`` degrees (default 0.01°) over [0°, 180°],
    from which the ``median`` is read as the centre of the bin holding the middle
    sample (mean of the two middle bins for an even count): within ``bin_width / 2``
    of the exact median. Angles and the mean/median/rmse are in degrees; the
    threshold scores are percentages.

    Note: public PETL tables label the *mean* angle "rmse"; ours is called ``mErr`` and
    ``rmse`` is the true root-mean-square.
    """

    kind = 'normals'

    def __init__(self, bin_width: float = 0.01,
                 thresholds: Sequence[float] = NORMALS_THRESHOLDS) -> None:
        if not 0 < bin_width <= 180:
            raise ValueError(f'bin_width must be in (0, 180] degrees, got {bin_width!r}')
        self.bin_width = float(bin_width)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.num_bins = int(np.ceil(180.0 / self.bin_width))
        self.count = 0
        self.sum = 0.0
        self.sum_sq = 0.0
        self.below = np.zeros(len(self.thresholds), dtype=np.int64)
        self.hist = np.zeros(self.num_bins, dtype=np.int64)

    def update(self, pred: Any, gt: Any, channel_axis: int = -1) -> 'NormalsStats':
        """Add one image: (…, 3) normals (or 3 on ``channel_axis``); gt zero = invalid."""
        pred, gt = to_numpy(pred, 'normals prediction'), to_numpy(gt, 'normals ground truth')
        check_same_shape(pred, gt, 'normals')
        if pred.shape[channel_axis] != 3:
            raise ValueError(f'normals: expected 3 channels on axis {channel_axis}, got shape '
                             f'{pred.shape}')
        p = np.moveaxis(pred, channel_axis, -1).reshape(-1, 3)
        g = np.moveaxis(gt, channel_axis, -1).reshape(-1, 3)
        if not np.isfinite(g).all():
            raise ValueError('normals ground truth contains NaN/inf; invalid pixels must be '
                             'all-zero vectors')
        valid = np.any(g != 0, axis=1)
        if not valid.any():
            return self
        p, g = p[valid], g[valid]
        if not np.isfinite(p).all():
            raise ValueError('normals prediction contains NaN/inf on valid pixels')
        ang = angular_error(p, g)
        self.count += int(ang.size)
        self.sum += float(ang.sum())
        self.sum_sq += float(np.square(ang).sum())
        self.below += np.array([(ang < t).sum() for t in self.thresholds], dtype=np.int64)
        bins = np.clip((ang / self.bin_width).astype(np.int64), 0, self.num_bins - 1)
        self.hist += np.bincount(bins, minlength=self.num_bins)
        return self

    def _check_compatible(self, bin_width: float, thresholds: Sequence[float]) -> None:
        if float(bin_width) != self.bin_width or tuple(thresholds) != self.thresholds:
            raise ValueError('NormalsStats: cannot combine statistics with different bin '
                             'widths or thresholds')

    def merge(self, other: 'NormalsStats') -> 'NormalsStats':
        self._check_compatible(other.bin_width, other.thresholds)
        self.count += other.count
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.below += other.below
        self.hist += other.hist
        return self

    def state_dict(self) -> Dict[str, Any]:
        """Compact, additive record (sparse histogram) for ``BaseMetric.results``."""
        return {'bin_width': self.bin_width, 'thresholds': self.thresholds,
                'count': self.count, 'sum': self.sum, 'sum_sq': self.sum_sq,
                'below': self.below.copy(), 'hist': sparse_counts(self.hist)}

    def add_state(self, state: Dict[str, Any]) -> 'NormalsStats':
        check_state_keys(state, ['bin_width', 'thresholds', 'count', 'sum', 'sum_sq', 'below',
                                 'hist'], 'NormalsStats')
        self._check_compatible(state['bin_width'], tuple(state['thresholds']))
        self.count += int(state['count'])
        self.sum += float(state['sum'])
        self.sum_sq += float(state['sum_sq'])
        self.below += np.asarray(state['below'], dtype=np.int64)
        add_sparse(self.hist, state['hist'], 'NormalsStats.hist')
        return self

    def median(self) -> float:
        if self.count == 0:
            return float('nan')
        cum = np.cumsum(self.hist)
        # 1-based ranks of the middle sample(s): equal for odd counts.
        lo, hi = (self.count + 1) // 2, self.count // 2 + 1
        centres = [(np.searchsorted(cum, r) + 0.5) * self.bin_width for r in (lo, hi)]
        return float(np.mean(centres))

    def compute(self) -> Dict[str, float]:
        """``mErr``, ``median``, ``rmse`` (degrees), ``<11.25`` etc. (percent)."""
        if self.count == 0:
            out = {'mErr': float('nan'), 'median': float('nan'), 'rmse': float('nan')}
            out.update({f'<{t:g}': float('nan') for t in self.thresholds})
            return out
        out = {'mErr': self.sum / self.count, 'median': self.median(),
               'rmse': float(np.sqrt(self.sum_sq / self.count))}
        out.update({f'<{t:g}': float(100.0 * b / self.count)
                    for t, b in zip(self.thresholds, self.below)})
        return out


def normals_scores(preds: ArrayOrList, gts: ArrayOrList, channel_axis: int = -1,
                   bin_width: float = 0.01) -> Dict[str, float]:
    """Normals ``mErr``, ``median``, ``rmse``, ``<11.25``, ``<22.5``, ``<30``.

    Args:
        preds: normals with 3 channels on ``channel_axis`` (default last: (H, W, 3) or
            a stack (N, H, W, 3)), or a list of per-image arrays.
        gts: ground-truth normals, same layout; all-zero vectors are invalid.
        channel_axis: channel axis of every array (negative values work for both a
            single image and a stack).
        bin_width: histogram bin width in degrees (median resolution).
    """
    stats = NormalsStats(bin_width=bin_width)
    pairs = zip(preds, gts) if isinstance(preds, (list, tuple)) else [(preds, gts)]
    if isinstance(preds, (list, tuple)) and len(preds) != len(gts):
        raise ValueError(f'normals_scores: {len(preds)} predictions but {len(gts)} ground truths')
    for p, g in pairs:  # pixel-pooled: an array of any leading shape is just pixels
        stats.update(p, g, channel_axis=channel_axis)
    return stats.compute()
