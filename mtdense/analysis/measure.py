"""Timing statistics and peak-memory probes used by the task-scaling profiler.

Memory semantics (see also the README section of ``tools/profile_tasks.py``):

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  at the start of a measurement (exact per measurement, tensors only; the
  allocator's cached-but-free blocks are excluded).
* CPU (Linux): the process's resident-set high-water mark ``VmHWM``, which is
  monotonic per process. Writing ``5`` to ``/proc/self/clear_refs`` resets it to
  the current RSS, so each measurement gets its own peak. The profiler reports
  the absolute peak (``peak_mem_mb``: model, inputs, interpreter and libraries
  included) and the increase over the RSS just before the measurement
  (``peak_mem_increase_mb``: activations, workspaces, gradients and optimizer
  state). Each config runs in a fresh process (``isolate='config'``); within it,
  heap memory freed by an earlier (config, T) point and kept by malloc can be
  reused by a later point without raising RSS, so a later point's increase can
  read low. ``isolate='point'`` (one process per point) removes that effect at
  the price of one interpreter start per point. The allocator is left at its
  defaults on purpose: forcing every large buffer through mmap
  (``MALLOC_MMAP_THRESHOLD_``) makes RSS track live memory but doubled the
  eager-mode latency of Swin-T on CPU in our measurements (page faults on
  every fresh buffer), which would falsify the timings.
* Where ``clear_refs`` is unavailable, ``getrusage`` ``ru_maxrss`` is used and
  ``mem_method`` says the value is a process-lifetime peak.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

__all__ = ['latency_stats', 'PeakMemory', 'time_iterations']

_MB = 1024.0 * 1024.0


def _quantile(sorted_values: List[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of a sorted list."""
    if not sorted_values:
        raise ValueError('_quantile: no values')
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(seconds: List[float]) -> Dict[str, float]:
    """Milliseconds: median, mean, std, min, max, p10, p25, p75, p90, iqr; plus n."""
    if not seconds:
        raise ValueError('latency_stats: no timed iterations')
    ms = sorted(1000.0 * s for s in seconds)
    p25, p75 = _quantile(ms, 0.25), _quantile(ms, 0.75)
    return dict(n=len(ms), median_ms=statistics.median(ms), mean_ms=statistics.fmean(ms),
                std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0, min_ms=ms[0], max_ms=ms[-1],
                p10_ms=_quantile(ms, 0.10), p25_ms=p25, p75_ms=p75, p90_ms=_quantile(ms, 0.90),
                iqr_ms=p75 - p25)


def _read_status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _ru_maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / _MB if sys.platform == 'darwin' else rss / 1024.0  # bytes on macOS, KiB on Linux


@dataclass
class PeakMemory:
    """Context manager measuring the peak memory of the enclosed code.

    After exit: ``peak_mb`` (absolute peak), ``increase_mb`` (peak minus the usage
    at entry) and ``method`` (``'cuda_max_allocated'``, ``'rss_hwm_reset'`` or
    ``'ru_maxrss_lifetime'``).
    """
    device: str = 'cpu'
    peak_mb: float = float('nan')
    increase_mb: float = float('nan')
    method: str = ''

    def __enter__(self) -> 'PeakMemory':
        if self.device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated() / _MB
            self.method = 'cuda_max_allocated'
        elif _reset_hwm() and _read_status_kb('VmHWM') is not None:
            self._start = _read_status_kb('VmRSS') / 1024.0
            self.method = 'rss_hwm_reset'
        else:
            self._start = _ru_maxrss_mb()
            self.method = 'ru_maxrss_lifetime'
        return self

    def __exit__(self, *exc) -> None:
        if self.method == 'cuda_max_allocated':
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / _MB
        elif self.method == 'rss_hwm_reset':
            self.peak_mb = _read_status_kb('VmHWM') / 1024.0
        else:
            self.peak_mb = _ru_maxrss_mb()
        self.increase_mb = max(0.0, self.peak_mb - self._start)


def time_iterations(step: Callable[[], None], device: str, warmup: int, repeats: int,
                    max_seconds: Optional[float] = None, min_repeats: int = 3,
                    on_iteration: Optional[Callable[[int], None]] = None) -> Dict[str, object]:
    """Run ``step`` ``warmup`` times untimed, then up to ``repeats`` timed times.

    Each timed iteration is bracketed by ``torch.cuda.synchronize`` on CUDA. With
    ``max_seconds``, timing stops early once at least ``min_repeats`` iterations
    ran and the timed total exceeds it (the count actually timed is reported).
    Returns ``dict(seconds=[...], warmup_seconds=[...])``.
    """
    cuda = device.startswith('cuda')

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    warm = []
    for _ in range(warmup):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        warm.append(time.perf_counter() - t0)
    times: List[float] = []
    for i in range(repeats):
        if on_iteration is not None:
            on_iteration(i)
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        if (max_seconds is not None and len(times) >= min_repeats
                and sum(times) >= max_seconds):
            break
    return dict(seconds=times, warmup_seconds=warm)
