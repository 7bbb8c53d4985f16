"""Δm: mean relative gain of a multi-task model over per-task baselines."""
from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

from mtdense.tasks import TASKS, get_task


def primary_metrics(metrics: Mapping[str, float]) -> Dict[str, float]:
    """``{task: value}`` of each task's primary metric in a ``task/metric`` dict (other
    keys, and tasks that are not registered, are left out)."""
    out = {}
    for key, value in metrics.items():
        task, _, name = key.partition('/')
        if task in TASKS and name == get_task(task).primary_metric:
            out[task] = float(value)
    return out


def relative_gains(results: Mapping[str, float], baselines: Mapping[str, float],
                   higher_is_better: Optional[Mapping[str, bool]] = None) -> Dict[str, float]:
    """Per task ``s_t (M_t − B_t) / B_t × 100`` with s_t = +1 (higher is better) or −1.

    Args:
        results: primary metric of the model per task, ``{task: M_t}``.
        baselines: the same metric of the baseline, ``{task: B_t}`` (same units).
        higher_is_better: ``{task: bool}``; None takes each task's direction from
            :data:`mtdense.tasks.TASKS` (semseg/parts/saliency mIoU ↑, normals mErr ↓,
            depth rmse ↓).
    """
    if not results:
        raise ValueError('delta_m: no task results given')
    gains = {}
    for task, value in results.items():
        if task not in baselines:
            raise KeyError(f'delta_m: no baseline for task {task!r} (baselines have '
                           f'{sorted(baselines)})')
        if higher_is_better is None:
            hib = get_task(task).higher_is_better
        elif task in higher_is_better:
            hib = bool(higher_is_better[task])
        else:
            raise KeyError(f'delta_m: higher_is_better has no entry for task {task!r}')
        base = float(baselines[task])
        if base == 0 or not math.isfinite(base):
            raise ValueError(f'delta_m: baseline of task {task!r} must be finite and non-zero, '
                             f'got {base!r}')
        sign = 1.0 if hib else -1.0
        gains[task] = sign * (float(value) - base) / base * 100.0
    return gains


def delta_m(results: Mapping[str, float], baselines: Mapping[str, float],
            higher_is_better: Optional[Mapping[str, bool]] = None) -> float:
    """Δm = (1/T) Σ_t s_t (M_t − B_t) / B_t × 100 over the tasks in ``results``.

    Example: semseg mIoU 70 vs 67.21 and normals mErr 17 vs 17.97 give
    ((70 − 67.21)/67.21 − (17 − 17.97)/17.97) / 2 × 100 ≈ +4.77.
    See :func:`relative_gains` for the arguments.
    """
    gains = relative_gains(results, baselines, higher_is_better)
    return sum(gains.values()) / len(gains)
