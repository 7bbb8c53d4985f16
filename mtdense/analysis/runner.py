"""The task-scaling profiler: cost of multi-task dense models versus the number of tasks T.

For every config and every T the model is built with T tasks (extra tasks are clones:
``semseg_2``, ...), plus the bare backbone as the floor no model can beat. Every
(point, mode) is a *unit*. After warm-up the units are timed in rounds: each round runs
``round_iters`` iterations of every unit, in a new shuffled order (``schedule=
'interleaved'``, the default), so load changes of a shared machine hit all units alike
and the same-round ratios the reports quote (:mod:`mtdense.analysis.report`) cancel
them. The models live in this process (``isolate='auto'`` -> 'none') or in persistent
worker processes (one per config or per point) fed round by round; peak memory is
measured afterwards with each point alone in a fresh process (``memory='isolated'``),
because a process holding several models cannot attribute its peak. Per iteration the
wall time, CPU time and backbone time are kept; per round the load average.
"""
from __future__ import annotations

import datetime as _dt
import random
import sys
import time
from collections import OrderedDict
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Tuple

import torch

from .build import point_id, unit_id
from .machine import loadavg, machine_info, mem_available_gb
from .measure import latency_stats
from .settings import BACKBONE_ALONE, CACHED_ALLOC_ENV, SCHEMA_VERSION, ProfileSettings
from .stats import cpu_stats, load_stats, round_values
from .worker import LocalHost, WorkerError, WorkerHost

__all__ = ['profile', 'point_specs', 'resolve_isolation', 'describe']

#: In-process building stops (with an error naming the fix) below this much free memory.
MIN_FREE_GB = 1.5


def _log(msg: str) -> None:
    print(f'[profile_tasks] {msg}', file=sys.stderr, flush=True)


def point_specs(settings: ProfileSettings) -> List[Dict[str, Any]]:
    """The points of a run: the bare backbone (of the first config) first, then every
    config at every T."""
    specs = []
    if settings.backbone_alone:
        specs.append(dict(label=BACKBONE_ALONE, config=settings.configs[0][1], num_tasks=None,
                          group=BACKBONE_ALONE))
    for label, path in settings.configs:
        specs += [dict(label=label, config=path, num_tasks=t, group=label)
                  for t in settings.num_tasks]
    return specs


def resolve_isolation(settings: ProfileSettings) -> str:
    """'auto' -> 'config' when the allocator must be set at process start, else 'none'."""
    if settings.isolate != 'auto':
        return settings.isolate
    return 'config' if settings.cpu_alloc == 'cached' else 'none'


class _Unit:
    """One timed (point, mode) and what was measured of it."""

    def __init__(self, host, spec: Dict[str, Any], mode: str) -> None:
        self.host, self.spec, self.mode = host, spec, mode
        self.uid = unit_id(spec['label'], spec.get('num_tasks'), mode)
        self.samples: List[Dict[str, float]] = []
        self.warmup_s: List[float] = []
        self.loads: List[Optional[List[float]]] = []  # load averages at its rounds' starts
        self.load_end: Optional[List[float]] = None
        self.memory: Optional[Dict[str, Any]] = None
        self.error: Optional[str] = None

    def timed_seconds(self) -> float:
        return sum(s['wall_s'] for s in self.samples)


class _LazyWorker:
    """A :class:`WorkerHost` started on first use (a sequential run starts them one at a
    time and closes each after its units)."""

    def __init__(self, s: Dict[str, Any], name: str, env: Optional[Dict[str, str]]) -> None:
        self.s, self.name, self.env, self._w = s, name, env, None

    def _worker(self) -> WorkerHost:
        if self._w is None:
            self._w = WorkerHost(self.s, self.name, self.env)
        return self._w

    def build(self, specs, count_flops: bool = True):
        return self._worker().build(specs, count_flops)

    def warmup(self, uid: str, n: int):
        return self._worker().warmup(uid, n)

    def run(self, uid: str, iterations: int):
        return self._worker().run(uid, iterations)

    def memory(self, uid: str, iterations: int):
        return self._worker().memory(uid, iterations)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None


def _hosts(settings: ProfileSettings, s: Dict[str, Any], isolate: str,
           specs: List[Dict[str, Any]]) -> List[Tuple[Any, List[Dict[str, Any]]]]:
    """Group the specs by the process they live in: ``[(host, specs)]``."""
    if isolate == 'none':
        return [(LocalHost(s), specs)]
    env = CACHED_ALLOC_ENV if settings.cpu_alloc == 'cached' else None
    groups: Dict[str, List] = OrderedDict()
    for sp in specs:
        key = sp['group'] if isolate == 'config' else point_id(sp['label'], sp['num_tasks'])
        groups.setdefault(key, []).append(sp)
    return [(_LazyWorker(s, name, env), group) for name, group in groups.items()]


def _build(hosts, settings: ProfileSettings, isolate: str) -> Tuple[Dict, List[_Unit]]:
    """Build every point where it lives; the timed units of those that built."""
    infos: Dict[str, Dict[str, Any]] = OrderedDict()
    units: List[_Unit] = []
    for host, group in hosts:
        for spec in group:
            pid = point_id(spec['label'], spec['num_tasks'])
            free = mem_available_gb()
            if isolate == 'none' and free is not None and free < MIN_FREE_GB:
                raise MemoryError(
                    f'profile: only {free} GB of memory left before building {pid}; all points '
                    "live in one process with isolate='none'. Measure fewer configs or T at "
                    "once, or use --isolate config --schedule sequential (one config's models "
                    'at a time)')
            try:
                info = host.build([spec])[pid]
            except WorkerError as exc:
                info = dict(label=spec['label'], config=spec['config'],
                            num_tasks=spec['num_tasks'], error=f'build failed: {exc}')
            infos[pid] = info
            if info.get('error') is None:
                modes = list(settings.timed_modes)
                if spec['label'] == BACKBONE_ALONE and modes:
                    modes = ['infer']  # the bare backbone has no training step
                units += [_Unit(host, spec, m) for m in modes]
    return infos, units


def _guard(unit: _Unit, fn, *args):
    """Run a host command for ``unit``; a failure marks the unit (the run goes on)."""
    if unit.error is not None:
        return None
    try:
        return fn(*args)
    except Exception as exc:  # WorkerError, or a step that raised in this process
        unit.error = str(exc) if isinstance(exc, WorkerError) else f'{type(exc).__name__}: {exc}'
        _log(f'{unit.uid}: ERROR {unit.error}')
        return None


def _warm(u: _Unit, settings: ProfileSettings) -> None:
    u.warmup_s = _guard(u, u.host.warmup, u.uid, settings.warmup) or []
    if settings.memory == 'shared':
        # in the timing process, where the other points' models are resident
        mem = _guard(u, u.host.memory, u.uid, settings.memory_iters)
        if mem is not None:
            u.memory = dict(mem, scope='shared-process')


def _time_rounds(units: List[_Unit], settings: ProfileSettings) -> int:
    """Warm-up, then the timed rounds; returns the number of rounds run."""
    rng = random.Random(settings.seed)
    rounds = 0
    if settings.schedule == 'interleaved':
        for u in units:
            _warm(u, settings)
        t_start = time.time()
        for r in range(settings.repeats):
            load = loadavg()
            order = [u for u in units if u.error is None]
            rng.shuffle(order)
            for u in order:
                got = _guard(u, u.host.run, u.uid, settings.round_iters)
                if got is not None:
                    u.samples += [dict(smp, round=r) for smp in got]
                    u.loads.append(load)
            rounds = r + 1
            live = [u for u in units if u.error is None]
            _log(f'round {rounds}/{settings.repeats}: {len(live)} units, load '
                 f'{load[0] if load else "?"}, {time.time() - t_start:.0f} s')
            if (settings.max_seconds is not None and rounds >= settings.min_repeats and live
                    and sum(u.timed_seconds() for u in live) >= settings.max_seconds * len(live)):
                break
        end = loadavg()
        for u in units:
            u.load_end = end
        return rounds
    # sequential: each unit's rounds back to back, one unit after the other
    for i, u in enumerate(units):
        _warm(u, settings)
        for r in range(settings.repeats):
            load = loadavg()
            got = _guard(u, u.host.run, u.uid, settings.round_iters)
            if got is None:
                break
            u.samples += [dict(smp, round=r) for smp in got]
            u.loads.append(load)
            rounds = max(rounds, r + 1)
            if (settings.max_seconds is not None and r + 1 >= settings.min_repeats
                    and u.timed_seconds() >= settings.max_seconds):
                break
        u.load_end = loadavg()
        _log(f'{u.uid}: {len(u.samples)} timed iterations')
        if not any(v.host is u.host for v in units[i + 1:]):
            u.host.close()  # one config's models at a time
    return rounds


def _memory(units: List[_Unit], settings: ProfileSettings, s: Dict[str, Any],
            isolate: str) -> None:
    """Peak memory of every unit with its point alone in a process: the point's own
    worker (``isolate='point'``) or a fresh worker per point."""
    iters = settings.memory_iters
    if isolate == 'point':
        for u in units:
            mem = _guard(u, u.host.memory, u.uid, iters)
            if mem is not None:
                u.memory = dict(mem, scope='isolated-process')
        return
    env = CACHED_ALLOC_ENV if settings.cpu_alloc == 'cached' else None
    s_mem = dict(s, flops=False)
    by_point: Dict[str, List[_Unit]] = OrderedDict()
    for u in units:
        by_point.setdefault(point_id(u.spec['label'], u.spec['num_tasks']), []).append(u)
    for pid, us in by_point.items():
        if all(u.error is not None for u in us):
            continue
        worker = None
        try:
            worker = WorkerHost(s_mem, f'memory {pid}', env)
            worker.build([us[0].spec], count_flops=False)
            # inference before training, as the modes are listed: the training peak then
            # includes no heap an inference pass freed afterwards
            for u in us:
                if u.error is None:
                    try:
                        u.memory = dict(worker.memory(u.uid, iters), scope='isolated-process')
                    except WorkerError as exc:
                        u.memory = dict(error=str(exc), scope='isolated-process')
        except WorkerError as exc:
            for u in us:
                u.memory = dict(error=str(exc), scope='isolated-process')
        finally:
            if worker is not None:
                worker.close()
        _log(f'memory {pid}: ' + ', '.join(
            f"{u.mode} {u.memory.get('peak_mb', float('nan')):.0f} MB" for u in us if u.memory))


def _base_record(info: Dict[str, Any], spec: Dict[str, Any], mode: str,
                 settings: ProfileSettings) -> Dict[str, Any]:
    host = info.get('host') or {}
    return OrderedDict(
        label=spec['label'], config=spec['config'], method=info.get('method'),
        num_tasks=spec['num_tasks'], tasks=info.get('tasks'), mode=mode,
        img_size=settings.img_size, batch_size=settings.batch_size, device=settings.device,
        dtype='bf16-autocast' if settings.bf16 else 'fp32', channels_last=settings.channels_last,
        compile=settings.compile, infer_forward=settings.infer_forward if mode == 'infer' else None,
        optimizer=settings.optimizer if mode == 'train' else None,
        threads=host.get('threads', torch.get_num_threads()),
        allocator_env=host.get('allocator_env', {}), schedule=settings.schedule,
        process=host.get('name'), error=info.get('error'))


def _unit_record(rec: Dict[str, Any], u: _Unit, rounds: int, batch_size: int) -> None:
    rec['error'] = rec['error'] or u.error
    if u.samples:
        wall = [x['wall_s'] for x in u.samples]
        lat = latency_stats(wall)
        rec['latency'] = lat
        rec['throughput_img_s'] = batch_size / (lat['median_ms'] / 1000.0)
        # throughput at the p90 / p10 latencies (low / high end of the spread)
        rec['throughput_img_s_p90_latency'] = batch_size / (lat['p90_ms'] / 1000.0)
        rec['throughput_img_s_p10_latency'] = batch_size / (lat['p10_ms'] / 1000.0)
        rec['warmup_ms'] = [1000.0 * t for t in u.warmup_s]
        rec['rounds_ms'] = [None if v is None else 1000.0 * v
                            for v in round_values(u.samples, rounds)]
        bb = [x['backbone_s'] for x in u.samples if 'backbone_s' in x]
        if bb:
            rec['backbone_latency'] = latency_stats(bb)
            rec['backbone_rounds_ms'] = [None if v is None else 1000.0 * v
                                         for v in round_values(u.samples, rounds, 'backbone_s')]
        rec['cpu'] = cpu_stats(wall, [x['cpu_s'] for x in u.samples])
        rec['cpu_rounds_ms'] = [None if v is None else 1000.0 * v
                                for v in round_values(u.samples, rounds, 'cpu_s')]
        faults = sorted(x['minflt'] for x in u.samples if 'minflt' in x)
        if faults:
            rec['page_faults'] = dict(median=faults[len(faults) // 2], max=faults[-1])
        rec['loadavg_1m'] = load_stats([x[0] if x else None for x in u.loads])
        rec['loadavg_before'], rec['loadavg_after'] = u.loads[0], u.load_end
    if u.memory is not None:
        rec['memory'] = u.memory
    elif u.samples:
        rec['memory'] = dict(peak_mb=float('nan'), increase_mb=float('nan'),
                             method='not measured', scope=None)


def profile(settings: ProfileSettings) -> Dict[str, Any]:
    """Run every measurement of ``settings``; return the report (docs/profiling.md)."""
    from .report import memory_convention, summarize, timing_convention
    settings.validate()
    s = asdict(settings)
    isolate = resolve_isolation(settings)
    started, load_before = time.time(), loadavg()
    specs = point_specs(settings)
    hosts = _hosts(settings, s, isolate, specs)
    try:
        infos, units = _build(hosts, settings, isolate)
        isolated = settings.memory == 'isolated'
        if isolated and isolate == 'point':
            # the point's own process holds nothing else: measure before the rounds
            _memory(units, settings, s, isolate)
        rounds = _time_rounds(units, settings) if units else 0
        if isolated and isolate != 'point':
            for host, _ in hosts:  # free the timing processes' memory first
                host.close()
            _memory(units, settings, s, isolate)
    finally:
        for host, _ in hosts:
            host.close()
    by_unit = {u.uid: u for u in units}
    records = []
    for spec in specs:
        pid = point_id(spec['label'], spec['num_tasks'])
        info = infos[pid]
        modes = list(settings.modes)
        if spec['label'] == BACKBONE_ALONE:
            modes = ['infer'] if settings.timed_modes else ['count']
        for mode in modes:
            rec = _base_record(info, spec, mode, settings)
            u = by_unit.get(unit_id(spec['label'], spec['num_tasks'], mode))
            if u is not None:
                _unit_record(rec, u, rounds, settings.batch_size)
            rec['params'] = info.get('params')
            rec['flops'] = info.get('flops')
            if info.get('flops_error'):
                rec['flops_error'] = info['flops_error']
            records.append(rec)
            _log(describe(rec))
    report = OrderedDict(
        schema_version=SCHEMA_VERSION, tool='mtdense profile',
        created=_dt.datetime.now().astimezone().isoformat(timespec='seconds'),
        wall_seconds=round(time.time() - started, 1), machine=machine_info(settings.device),
        settings=s,
        schedule=OrderedDict(kind=settings.schedule, isolate=isolate, rounds=rounds,
                             rounds_planned=settings.repeats, round_iters=settings.round_iters,
                             order_seed=settings.seed, units=len(units),
                             processes=sorted({str((i.get('host') or {}).get('name', '?'))
                                               for i in infos.values()})),
        load=OrderedDict(before=load_before, after=loadavg(),
                         rounds_1m=load_stats([x[0] for u in units for x in u.loads if x])),
        flop_convention=('FLOPs = multiply-accumulates (fvcore/mmengine convention), per image, '
                         'counted as executed (FlopCounterMode; the jit trace beside it in '
                         'flops.traced); element-wise ops not counted; backbone = backbone + '
                         'PETL method + neck'),
        memory_convention=memory_convention(settings.device, settings.memory),
        timing_convention=timing_convention(settings.schedule),
        results=records)
    report['summary'] = summarize(report)
    return report


def describe(rec: Dict[str, Any]) -> str:
    """One log line per record."""
    t = rec['num_tasks']
    head = f"{rec['label']}" + ('' if t is None else f' T={t}') + f" {rec['mode']}"
    if rec.get('error'):
        return f'{head}: ERROR {rec["error"]}'
    if 'latency' not in rec:
        fl = rec.get('flops') or {}
        return (f"{head}: bb {fl.get('backbone', float('nan')) / 1e9:.3f} GFLOPs/img, "
                f"trainable {(rec.get('params') or {}).get('trainable')}")
    lat, cpu = rec['latency'], rec.get('cpu') or {}
    mem = rec.get('memory') or {}
    msg = (f"{head}: {lat['median_ms']:.1f} ms [p10 {lat['p10_ms']:.1f}, p90 {lat['p90_ms']:.1f}, "
           f"n={lat['n']}] {rec['throughput_img_s']:.2f} img/s, cpu/wall "
           f"{cpu.get('util_median', float('nan')):.2f}"
           + (' CONTENDED' if cpu.get('contended') else ''))
    peak = mem.get('peak_mb')
    if isinstance(peak, float) and peak == peak:
        msg += f", peak {peak:.0f} MB (+{mem['increase_mb']:.0f})"
    return msg
