"""Timing, CPU time and peak-memory probes used by the task-scaling profiler.

Timing: :func:`timed_iterations` brackets each iteration with
``torch.cuda.synchronize`` on CUDA and records wall time (``perf_counter``), this
process's CPU time (``process_time``, all threads) and, with a
:class:`BackboneTimer`, the time spent inside ``model.backbone``. CPU time / wall time
below one busy core means the process waited for a CPU: another process had it
(see :data:`CONTENTION_UTIL`).

Memory semantics (see also docs/profiling.md):

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``
  at the start of a measurement (exact per measurement, tensors only; the
  allocator's cached-but-free blocks are excluded).
* CPU (Linux): the process's resident-set high-water mark ``VmHWM``, which is
  monotonic per process. Writing ``5`` to ``/proc/self/clear_refs`` resets it to
  the current RSS, so each measurement gets its own peak. The profiler reports
  the absolute peak (``peak_mb``: model, inputs, interpreter and libraries
  included) and the increase over the RSS just before the measurement
  (``increase_mb``: activations, workspaces, gradients and optimizer state). The
  absolute peak is the model's own only in a process that holds that model alone:
  the profiler's default memory pass (``memory='isolated'``) measures every point
  once more in a fresh process. In a process holding several models (the
  interleaved timing process), heap memory freed by another point and kept by malloc
  can be reused without raising RSS, so an increase can read low. The allocator is left at its
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

__all__ = ['latency_stats', 'PeakMemory', 'time_iterations', 'timed_iterations',
           'BackboneTimer', 'CONTENTION_UTIL']

_MB = 1024.0 * 1024.0

#: An iteration whose CPU time / wall time is below this ran less than ~one busy core:
#: the process waited for a CPU (another process had it). Exact for one thread; with
#: several threads a contended run can still read above it.
CONTENTION_UTIL = 0.9


def quantile(sorted_values: List[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of a sorted list."""
    if not sorted_values:
        raise ValueError('quantile: no values')
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(seconds: List[float]) -> Dict[str, float]:
    """Milliseconds: median, mean, std, min, max, p10, p25, p75, p90, iqr; plus n."""
    if not seconds:
        raise ValueError('latency_stats: no timed iterations')
    ms = sorted(1000.0 * s for s in seconds)
    p25, p75 = quantile(ms, 0.25), quantile(ms, 0.75)
    return dict(n=len(ms), median_ms=statistics.median(ms), mean_ms=statistics.fmean(ms),
                std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0, min_ms=ms[0], max_ms=ms[-1],
                p10_ms=quantile(ms, 0.10), p25_ms=p25, p75_ms=p75, p90_ms=quantile(ms, 0.90),
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


class BackboneTimer:
    """Forward hooks timing ``module`` (e.g. ``model.backbone``) while ``active``."""

    def __init__(self, module: torch.nn.Module, device: str) -> None:
        self.cuda = device.startswith('cuda')
        self.times: List[float] = []
        self.active = False
        self._t0 = 0.0
        self._handles = [module.register_forward_pre_hook(self._pre),
                         module.register_forward_hook(self._post)]

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _pre(self, module, args) -> None:
        if self.active:
            self._sync()
            self._t0 = time.perf_counter()

    def _post(self, module, args, output) -> None:
        if self.active:
            self._sync()
            self.times.append(time.perf_counter() - self._t0)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_iterations(step: Callable[[], None], device: str, iterations: int,
                     timer: Optional[BackboneTimer] = None) -> List[Dict[str, float]]:
    """Run ``step`` ``iterations`` times; per iteration ``wall_s``, ``cpu_s`` (this
    process, all threads), ``minflt`` (minor page faults: fresh memory touched for the
    first time, e.g. large buffers glibc maps anew on every call) and, with ``timer``,
    ``backbone_s`` (summed over the backbone calls of that iteration)."""
    cuda = device.startswith('cuda')
    out: List[Dict[str, float]] = []
    for _ in range(iterations):
        if timer is not None:
            timer.times.clear()
            timer.active = True
        if cuda:
            torch.cuda.synchronize()
        f0, c0, t0 = _minor_faults(), time.process_time(), time.perf_counter()
        try:
            step()
            if cuda:
                torch.cuda.synchronize()
        finally:
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if timer is not None:
                timer.active = False
        sample = dict(wall_s=wall, cpu_s=cpu, minflt=float(_minor_faults() - f0))
        if timer is not None and timer.times:
            sample['backbone_s'] = float(sum(timer.times))
        out.append(sample)
    return out
