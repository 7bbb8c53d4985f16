"""Statistics of interleaved measurements: same-round paired ratios with bootstrap
confidence intervals, CPU-utilisation (contention) and load summaries.

Why paired ratios: on a shared machine the load changes from one second to the next.
Timed in the same round (the units of a round run within seconds of each other, in a
shuffled order), two points see nearly the same load, so the ratio of their times in
that round cancels most of it; the median over rounds of these ratios, with a
percentile-bootstrap interval of that median, is what the reports quote. A ratio of
two medians taken minutes apart does not cancel anything.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .measure import CONTENTION_UTIL, quantile

__all__ = ['paired_ratio', 'cpu_stats', 'load_stats', 'BOOTSTRAP_RESAMPLES', 'CI_LEVEL']

BOOTSTRAP_RESAMPLES = 2000
CI_LEVEL = 0.95


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def paired_ratio(num: Sequence[Optional[float]], den: Sequence[Optional[float]],
                 seed: int = 0) -> Optional[Dict[str, object]]:
    """Median over rounds of ``num[r] / den[r]`` with a bootstrap CI of that median.

    ``num`` and ``den`` are per-round values aligned by round (None where a round has
    no value). Returns ``median``, ``ci95`` ([lo, hi], percentile bootstrap of the median
    over rounds, :data:`BOOTSTRAP_RESAMPLES` resamples, seeded), ``p10`` / ``p90`` of the
    per-round ratios and ``n`` (rounds used); None when no round has both values.
    """
    pairs = [(a, b) for a, b in zip(num, den) if a is not None and b is not None and b > 0]
    if not pairs:
        return None
    r = np.array([a / b for a, b in pairs], dtype=float)
    n = len(r)
    if n == 1:
        lo = hi = float(r[0])
    else:
        rng = np.random.default_rng(seed)
        meds = np.median(r[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))], axis=1)
        alpha = (1.0 - CI_LEVEL) / 2.0
        lo, hi = (float(v) for v in np.quantile(meds, [alpha, 1.0 - alpha]))
    srt = sorted(float(v) for v in r)
    return dict(median=float(np.median(r)), ci95=[lo, hi], p10=quantile(srt, 0.10),
                p90=quantile(srt, 0.90), n=n)


def cpu_stats(wall_s: Sequence[float], cpu_s: Sequence[float],
              threshold: float = CONTENTION_UTIL) -> Dict[str, object]:
    """CPU time per iteration and CPU-time / wall-time utilisation.

    ``contended`` is True when the median utilisation is below ``threshold`` (the
    process got less than ~one busy core in most iterations); ``contended_fraction``
    is the share of iterations below it.
    """
    util = [c / w for c, w in zip(cpu_s, wall_s) if w > 0]
    srt = sorted(util)
    med = _median(util) if util else float('nan')
    return dict(median_ms=1000.0 * _median(cpu_s) if cpu_s else float('nan'),
                total_s=float(sum(cpu_s)), util_median=med,
                util_p10=quantile(srt, 0.10) if srt else float('nan'),
                util_min=srt[0] if srt else float('nan'),
                contended_fraction=(sum(1 for u in util if u < threshold) / len(util)
                                    if util else float('nan')),
                contended=bool(util) and med < threshold, threshold=threshold)


def load_stats(values: Sequence[Optional[float]]) -> Optional[Dict[str, float]]:
    """min / median / max of 1-minute load averages (None when none was read)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return dict(min=min(vals), median=_median(vals), max=max(vals), n=len(vals))


def round_values(samples: List[Dict[str, float]], rounds: int, key: str = 'wall_s'
                 ) -> List[Optional[float]]:
    """Per round, the median of that round's iterations (``samples`` carry ``round``)."""
    per: List[List[float]] = [[] for _ in range(rounds)]
    for s in samples:
        if key in s and 0 <= s['round'] < rounds:
            per[s['round']].append(s[key])
    return [_median(v) if v else None for v in per]
