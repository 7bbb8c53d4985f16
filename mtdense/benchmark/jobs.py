"""What a benchmark worker does for one job: train, test, upstream or profile.

Each function takes the job dict written by :mod:`mtdense.benchmark.plan` and writes
its result JSON atomically (``<file>.tmp`` then ``os.replace``), so a result file on
disk always belongs to a finished job. Training and testing go through mmengine's
``Runner`` with the run's own config file (``runs/<row>/<run>/config.py``, runnable with
``tools/train.py``).
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from mmengine.hooks import Hook

__all__ = ['IterTimer', 'run_job', 'write_json_atomic']

#: iterations left out of the timing medians (first-call costs: allocator, oneDNN kernels)
TIMING_SKIP = 2


def write_json_atomic(obj: Any, path: str) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file (no partial files)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1, allow_nan=True)
        f.write('\n')
    os.replace(tmp, path)


class IterTimer(Hook):
    """Per-iteration compute and data-loading seconds of a training run.

    Registered first (``VERY_HIGH``): ``compute`` spans this hook's ``before_train_iter``
    to its ``after_train_iter`` (the train step: preprocessing, forward, backward,
    optimizer step); ``data`` spans the end of one iteration to the start of the next
    (fetching and collating the next batch, plus the other hooks' after-iteration work,
    which the median removes when it is periodic).
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.compute: List[float] = []
        self.data: List[float] = []
        self._start: Optional[float] = None
        self._end: Optional[float] = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        now = time.perf_counter()
        if self._end is not None:
            self.data.append(now - self._end)
        self._start = now

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        self.compute.append(now - self._start)
        self._end = now

    def summary(self, batch_size: int) -> Dict[str, Any]:
        """Medians after :data:`TIMING_SKIP` iterations, and img/s of both."""
        comp = self.compute[TIMING_SKIP:] or self.compute
        data = self.data[TIMING_SKIP:] or self.data
        out: Dict[str, Any] = dict(iterations=len(self.compute), skipped=TIMING_SKIP,
                                   batch_size=batch_size,
                                   compute_s_per_iter=statistics.median(comp),
                                   compute_s_total=sum(self.compute),
                                   data_s_per_iter=statistics.median(data) if data else None,
                                   data_s_total=sum(self.data))
        out['train_img_s'] = batch_size / out['compute_s_per_iter']
        out['loader_img_s'] = (batch_size / out['data_s_per_iter']
                               if out['data_s_per_iter'] else None)
        return out


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec='seconds')


def _release(runner) -> None:
    """Close the run's log file and drop mmengine's per-experiment singletons, so the
    next run of this worker process starts clean."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.visualization import Visualizer
    name = runner.experiment_name
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)
    for cls in (MMLogger, MessageHub, Visualizer):
        getattr(cls, '_instance_dict', {}).pop(name, None)


def _with_runner(cfg, work: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
    """Build the Runner of ``cfg`` (a config file or a ``Config``), return ``work(runner)``,
    then release the runner (:func:`_release`) and collect it, also when ``work`` fails."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mtdense.utils import register_all_modules
    register_all_modules()
    runner = Runner.from_cfg(cfg if isinstance(cfg, Config) else Config.fromfile(cfg))
    try:
        return work(runner)
    finally:
        _release(runner)
        del runner
        gc.collect()


def _preload(runner) -> Dict[str, Any]:
    """Decode every training sample into the ``CachedMultiTaskLoad`` cache before the
    first iteration, so the measured loader time is the per-iteration pipeline, not the
    one-time decoding (reported here instead). Only decoding runs (no augmentation, no
    random numbers), and the train loop is built exactly as ``runner.train()`` builds it
    first, so the run's results are unchanged."""
    from .transforms import CachedMultiTaskLoad
    t0 = time.perf_counter()
    dataset = runner.train_loop.dataloader.dataset
    loaders = [t for t in getattr(dataset.pipeline, 'transforms', [])
               if isinstance(t, CachedMultiTaskLoad)]
    if not loaders:
        return dict(samples=0, seconds=0.0)
    for i in range(len(dataset)):
        loaders[0].transform(dataset.get_data_info(i))
    return dict(samples=len(dataset), seconds=time.perf_counter() - t0)


def _metrics(m: Dict[str, Any]) -> Dict[str, float]:
    return {k: float(v) for k, v in m.items()}


def run_train(job: Dict[str, Any]) -> Dict[str, Any]:
    """Train one run, evaluate it on the validation split, keep its checkpoint."""
    from mtdense.analysis import PeakMemory
    t0 = time.perf_counter()

    def train(runner) -> Dict[str, Any]:
        timer = IterTimer()
        runner.register_hook(timer)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        params = model.parameter_report()
        preload = _preload(runner)
        built = time.perf_counter()
        with PeakMemory('cpu') as mem:
            runner.train()
        trained = time.perf_counter()
        val = runner.val()
        done = time.perf_counter()
        iters = int(runner.cfg.train_cfg.max_iters)
        ckpt = os.path.join(runner.work_dir, f'iter_{iters}.pth')
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(f'{job["id"]}: training finished but {ckpt} is missing')
        return dict(
            kind='train', id=job['id'], spec_hash=job['spec_hash'], finished=_now(),
            row=job['row'], lr=job['lr'], backbone_lr_mult=job.get('backbone_lr_mult', 1.0),
            seed=job['seed'], iters=iters,
            val_metrics=_metrics(val), num_val=len(runner.val_dataloader.dataset),
            preload=preload,
            params=params, timing=timer.summary(int(runner.cfg.train_dataloader.batch_size)),
            seconds=dict(build=built - t0, train=trained - built, val=done - trained,
                         total=done - t0),
            peak_rss_mb=mem.peak_mb, checkpoint=ckpt)

    result = _with_runner(job['config'], train)
    write_json_atomic(result, job['result'])
    return result


def run_test(job: Dict[str, Any]) -> Dict[str, Any]:
    """Evaluate a trained run's checkpoint on the held-out test split."""
    from mmengine.config import Config
    if not os.path.isfile(job['checkpoint']):
        raise FileNotFoundError(f'{job["id"]}: checkpoint {job["checkpoint"]} not found (its '
                                'training run must be redone)')
    t0 = time.perf_counter()
    cfg = Config.fromfile(job['config'])
    cfg.load_from, cfg.resume = job['checkpoint'], False
    cfg.work_dir = job['work_dir']
    cfg.experiment_name = f'{cfg.experiment_name}_test'
    cfg.visualizer.name = cfg.experiment_name

    def test(runner) -> Dict[str, Any]:
        built = time.perf_counter()
        metrics = runner.test()
        done = time.perf_counter()
        return dict(kind='test', id=job['id'], spec_hash=job['spec_hash'], finished=_now(),
                    row=job['row'], lr=job['lr'], seed=job['seed'],
                    test_metrics=_metrics(metrics),
                    num_test=len(runner.test_dataloader.dataset),
                    seconds=dict(build=built - t0, test=done - built, total=done - t0))

    result = _with_runner(cfg, test)
    write_json_atomic(result, job['result'])
    return result


def run_upstream(job: Dict[str, Any]) -> Dict[str, Any]:
    """Upstream pretraining, then ``mtdense extract-backbone`` on its last checkpoint."""
    t0 = time.perf_counter()

    def train(runner) -> Dict[str, Any]:
        timer = IterTimer()
        runner.register_hook(timer)
        preload = _preload(runner)
        runner.train()
        iters = int(runner.cfg.train_cfg.max_iters)
        return dict(iters=iters, checkpoint=os.path.join(runner.work_dir, f'iter_{iters}.pth'),
                    timing=timer.summary(int(runner.cfg.train_dataloader.batch_size)),
                    preload=preload)

    trained = _with_runner(job['config'], train)
    ckpt = trained['checkpoint']
    proc = subprocess.run([sys.executable, '-m', 'mtdense.cli', 'extract-backbone', ckpt,
                           '--out', job['backbone']],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f'mtdense extract-backbone {ckpt} exited with {proc.returncode}: '
                           f'{proc.stdout[-2000:]}')
    result = dict(kind='upstream', id=job['id'], spec_hash=job['spec_hash'], finished=_now(),
                  iters=trained['iters'], checkpoint=ckpt, backbone=job['backbone'],
                  timing=trained['timing'], preload=trained['preload'],
                  extract_output=proc.stdout.strip(),
                  seconds=dict(total=time.perf_counter() - t0))
    write_json_atomic(result, job['result'])
    return result


def run_profile(job: Dict[str, Any]) -> Dict[str, Any]:
    """Cost versus the number of tasks for one row, with the profiler's public API (its own
    fresh process per config, so peak memory is the model's alone)."""
    from mtdense.analysis import ProfileSettings, profile
    t0 = time.perf_counter()
    s = dict(job['settings'])
    settings = ProfileSettings(configs=[(job['row'], job['config'])], **s)
    report = profile(settings)
    # a failing point (e.g. out of memory at T = 8) is recorded in its record's `error`
    # and shown in the tables; re-running would fail the same way
    result = dict(kind='profile', id=job['id'], spec_hash=job['spec_hash'], finished=_now(),
                  row=job['row'], report=report, seconds=dict(total=time.perf_counter() - t0),
                  errors=[f"T={r['num_tasks']} {r['mode']}: {r['error']}"
                          for r in report['results'] if r.get('error')])
    write_json_atomic(result, job['result'])
    return result


_KINDS = dict(train=run_train, test=run_test, upstream=run_upstream, profile=run_profile)


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """Dispatch on ``job['kind']``."""
    if job.get('kind') not in _KINDS:
        raise ValueError(f'job {job.get("id")!r}: kind must be one of {sorted(_KINDS)}, got '
                         f'{job.get("kind")!r}')
    return _KINDS[job['kind']](job)
