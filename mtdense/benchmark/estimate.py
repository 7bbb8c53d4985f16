"""Estimate a preset's duration from the measured per-job times of a finished benchmark.

Each job of the target preset gets a duration derived from the measured jobs of the same
row (``benchmark.json``, ``job_times.jsonl`` and ``invocations.jsonl`` of the finished
folder):

* training run: the measured job time + (target - measured iterations) x the row's
  measured seconds per iteration (step + loading, median over its runs), validation
  scaled by the number of validation scenes;
* test evaluation: measured, with the evaluation part scaled by the number of test scenes;
* upstream: measured + the extra iterations x its seconds per iteration;
* profile: as measured (the presets differ only in its repeats and warm-up);
* data rendering: measured seconds per scene.

Two bases: the jobs' wall seconds (as measured, with whatever else loaded the machine)
and their CPU seconds (what each single-threaded job takes alone on an idle core). The
jobs are scheduled on ``workers`` slots in the benchmark's own order (upstream, profiles,
training runs longest first, tests; a row's other seeds after its tuning runs). On the
wall basis, the same simulation of the *measured* preset against its measured wall time
gives a calibration factor, applied to the target.
"""
from __future__ import annotations

import heapq
import json
import os
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .plan import run_name
from .presets import Preset

__all__ = ['estimate', 'format_estimate', 'simulate']


def latest_job_times(folder: str) -> Dict[str, Dict[str, Any]]:
    """``{job id: job_times.jsonl record}``: the latest successful record of each job in
    ``folder`` (none when the file is not there yet)."""
    path = os.path.join(folder, 'job_times.jsonl')
    out: Dict[str, Dict[str, Any]] = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    if rec.get('ok'):
                        out[rec['id']] = rec
    return out


def _times(folder: str) -> Dict[str, Dict[str, Any]]:
    """:func:`latest_job_times` of a finished benchmark (the file must be there)."""
    path = os.path.join(folder, 'job_times.jsonl')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: the estimate needs the per-job times of a '
                                'finished benchmark')
    return latest_job_times(folder)


class _Clock:
    """Job durations on one basis: 'wall' (as measured, with the machine's load) or 'cpu'
    (each job's CPU seconds: what it takes alone on an idle core; a job's wall-clock parts
    are scaled by its CPU / wall ratio)."""

    def __init__(self, times: Mapping[str, Dict[str, Any]], basis: str) -> None:
        if basis not in ('wall', 'cpu'):
            raise ValueError(f"estimate: basis must be 'wall' or 'cpu', got {basis!r}")
        self.times, self.basis = times, basis

    def has(self, job_id: str) -> bool:
        return job_id in self.times

    def factor(self, job_id: str) -> float:
        rec = self.times.get(job_id)
        if self.basis == 'wall' or not rec or not rec.get('cpu_seconds') or not rec['seconds']:
            return 1.0
        return min(1.0, rec['cpu_seconds'] / rec['seconds'])

    def seconds(self, job_id: str, default: float = 0.0) -> float:
        rec = self.times.get(job_id)
        if not rec:
            return default
        return rec['seconds'] * self.factor(job_id)


def _fresh_invocation(folder: str) -> Optional[Dict[str, Any]]:
    """The latest invocation that ran every job itself (nothing resumed, nothing left):
    its wall time calibrates the simulation."""
    path = os.path.join(folder, 'invocations.jsonl')
    if not os.path.isfile(path):
        return None
    best = None
    with open(path) as f:
        for line in f:
            if line.strip():
                inv = json.loads(line)
                if not inv.get('resumed_jobs') and inv.get('jobs_done') == inv.get('jobs_total'):
                    best = inv
    return best


def simulate(jobs: List[Dict[str, Any]], workers: int) -> float:
    """Makespan of ``jobs`` (``id, seconds, deps, priority, cost``) on ``workers`` slots,
    dispatching ready jobs by (priority, -cost) as the benchmark does."""
    by_id = {j['id']: j for j in jobs}
    done: set = set()
    running: List[Tuple[float, str]] = []
    pending = set(by_id)
    now = 0.0
    while pending or running:
        ready = sorted((j for j in (by_id[i] for i in pending)
                        if all(d in done for d in j['deps'])),
                       key=lambda j: (j['priority'], -j['cost'], j['id']))
        while ready and len(running) < workers:
            j = ready.pop(0)
            pending.discard(j['id'])
            heapq.heappush(running, (now + j['seconds'], j['id']))
        if not running:
            raise ValueError(f'simulate: jobs {sorted(pending)[:5]} wait on missing dependencies')
        now, jid = heapq.heappop(running)
        done.add(jid)
    return now


def _row_model(row: Mapping[str, Any], clock: _Clock) -> Dict[str, Any]:
    """Measured per-row quantities: seconds per iteration, fixed part of a training job,
    validation and test seconds per scene."""
    runs = row['runs']
    if not runs:
        raise ValueError(f'row {row["key"]}: no finished runs to estimate from')
    per_iter, fixed, val_per, test_fixed, test_per = [], [], [], [], []
    for r in runs:
        name = r.get('run') or run_name(r['lr'], r['seed'])  # older results: one lr
        train_id, test_id = f'train/{row["key"]}/{name}', f'test/{row["key"]}/{name}'
        f_train, f_test = clock.factor(train_id), clock.factor(test_id)
        # per iteration: the step and loading medians; the rest of the job is fixed set-up
        # (process-side config parsing, runner build, checkpointing) and validation
        s_it = (r['train_s_per_iter'] + (r['data_s_per_iter'] or 0.0)) * f_train
        per_iter.append(s_it)
        val = r['seconds']['val'] * f_train
        if clock.has(train_id):
            fixed.append(clock.seconds(train_id) - r['iters'] * s_it - val)
        val_per.append(val / max(1, r['num_val']))
        if clock.has(test_id):
            test = r['test_seconds'] * f_test
            test_per.append(test / max(1, r['num_test']))
            test_fixed.append(clock.seconds(test_id) - test)
    return dict(s_per_iter=statistics.median(per_iter),
                fixed=statistics.median(fixed) if fixed else 0.0,
                val_per_scene=statistics.median(val_per),
                test_fixed=statistics.median(test_fixed) if test_fixed else 0.0,
                test_per_scene=statistics.median(test_per) if test_per else 0.0)


def _jobs_for(preset: Preset, measured: Mapping[str, Any], clock: _Clock,
              models: Mapping[str, Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], float]:
    """The target's job list with durations, and its serial preparation seconds."""
    rows = {r['key']: r for r in measured['rows']}
    missing = [k for k in preset.rows if k not in rows]
    if missing:
        raise ValueError(f'estimate: rows {missing} were not in the measured benchmark')
    n_val = round(preset.num_trainval * preset.val_fraction)
    jobs: List[Dict[str, Any]] = []
    up = measured.get('upstream')
    families_up = {f for f, p in measured['protocol'].items() if p['weights'] == 'upstream'}
    if up and any(rows[k]['family'] in families_up for k in preset.rows):
        t = clock.seconds('upstream', up['seconds']['total'])
        s_it = (up['timing']['compute_s_per_iter'] + (up['timing']['data_s_per_iter'] or 0.0)
                ) * clock.factor('upstream')
        jobs.append(dict(id='upstream', deps=[], priority=0, cost=0.0,
                         seconds=t + (preset.upstream_iters - up['iters']) * s_it))
    for key in preset.rows:
        row, m = rows[key], models[key]
        deps = ['upstream'] if row['family'] in families_up else []
        jobs.append(dict(id=f'profile/{key}', deps=[], priority=1, cost=10.0,
                         seconds=clock.seconds(f'profile/{key}')))
        run_s = m['fixed'] + preset.iters * m['s_per_iter'] + n_val * m['val_per_scene']
        # every multiple for a row whose backbone side trains (as the plan's grid)
        trains = ((row.get('params') or {}).get('backbone_side_trainable') or 0) > 0
        points = len(preset.lrs) * (len(preset.backbone_lr_mults) if trains else 1)
        tuning = [f'train/{key}/tune{i}' for i in range(points)]
        for tid in tuning:
            jobs.append(dict(id=tid, deps=deps, priority=2, cost=run_s, seconds=run_s))
        test_s = m['test_fixed'] + preset.num_test * m['test_per_scene']
        for i, _ in enumerate(preset.seeds):
            train_id = tuning[0] if i == 0 else f'train/{key}/seed{i}'
            if i:
                jobs.append(dict(id=train_id, deps=deps + tuning, priority=2, cost=run_s,
                                 seconds=run_s))
            jobs.append(dict(id=f'test/{key}/seed{i}', deps=[train_id] + tuning, priority=3,
                             cost=test_s, seconds=test_s))
    prep = 0.0
    for which, n in (('trainval', preset.num_trainval), ('test', preset.num_test)):
        d = measured['data'].get(which) or {}
        if d.get('render_seconds'):
            prep += d['render_seconds'] / d['num'] * n
    return jobs, prep


def _startup_seconds(times: Mapping[str, Dict[str, Any]], workers: int) -> float:
    """Worker start (imports) measured from the first jobs: submitted to finished, minus the
    job's own time."""
    first = sorted(times.values(), key=lambda r: r['submitted'])[:workers]
    gaps = [r['finished'] - r['submitted'] - r['seconds'] for r in first]
    return max(gaps) if gaps else 0.0


def estimate(measured: Mapping[str, Any], preset: Preset, folder: str) -> Dict[str, Any]:
    """Estimated wall seconds of ``preset`` from the finished benchmark ``measured``
    (its ``benchmark.json``) in ``folder`` (with ``job_times.jsonl`` and
    ``invocations.jsonl``), on two bases:

    * ``as_measured``: the jobs' wall times, the simulated schedule calibrated by the
      source run's measured wall time (so the machine's load during that run carries over);
    * ``idle``: the jobs' CPU seconds (an otherwise idle machine: each single-threaded job
      alone on its core), plus the measured preparation, worker start and finalisation.
    """
    times = _times(folder)
    mp = measured['preset']
    source = Preset(**{k: (tuple(v) if isinstance(v, list) and k != 'profile' else v)
                       for k, v in mp.items() if k != 'tuning_seed'})
    inv = _fresh_invocation(folder) or measured['invocation']
    render = sum((d or {}).get('render_seconds') or 0.0 for d in measured['data'].values())
    # preparation without the rendering (scaled per target below), finalisation, worker start
    fixed = max(0.0, (inv.get('prepare_seconds') or 0.0) - render) \
        + (inv.get('finalize_seconds') or 0.0) + _startup_seconds(times, source.workers)
    out: Dict[str, Any] = dict(target=preset.name, source=mp['name'],
                               source_wall_seconds=inv.get('wall_seconds'),
                               source_loadavg=dict(start=inv.get('loadavg_start'),
                                                   end=inv.get('loadavg_end')),
                               fixed_seconds=fixed)
    for basis in ('wall', 'cpu'):
        clock = _Clock(times, basis)
        models = {r['key']: _row_model(r, clock) for r in measured['rows'] if r['runs']}
        src_jobs, src_prep = _jobs_for(source, measured, clock, models)
        tgt_jobs, tgt_prep = _jobs_for(preset, measured, clock, models)
        sim_src = simulate(src_jobs, source.workers) + fixed + src_prep
        sim_tgt = simulate(tgt_jobs, preset.workers) + fixed + tgt_prep
        calib = None
        if basis == 'wall' and not inv.get('resumed_jobs') and inv.get('wall_seconds'):
            calib = inv['wall_seconds'] / sim_src
        per_row: Dict[str, float] = defaultdict(float)
        for j in tgt_jobs:
            if '/' in j['id']:
                per_row[j['id'].split('/')[1]] += j['seconds']
        out['as_measured' if basis == 'wall' else 'idle'] = dict(
            source_simulated_seconds=sim_src, calibration=calib, simulated_seconds=sim_tgt,
            estimated_seconds=sim_tgt * calib if calib else sim_tgt,
            worker_seconds=sum(j['seconds'] for j in tgt_jobs), num_jobs=len(tgt_jobs),
            per_row_worker_seconds=dict(per_row), row_models=models)
    out['note'] = ('profile jobs at their measured time (presets differ only in its repeats and '
                   'warm-up); rows not in the measured run cannot be estimated')
    return out


def format_estimate(est: Mapping[str, Any]) -> str:
    """A short text report of :func:`estimate`."""
    lines = [f'estimate for preset {est["target"]!r} from the measured {est["source"]!r} run '
             f'(its wall time {est["source_wall_seconds"]} s, load average '
             f'{est["source_loadavg"]["start"]} at the start, {est["source_loadavg"]["end"]} at '
             'the end):']
    for key, what in (('idle', 'idle machine (CPU seconds of each job)'),
                      ('as_measured', 'as measured (wall seconds, that run\'s load)')):
        e = est[key]
        cal = (f', x {e["calibration"]:.2f} calibration (source run measured vs simulated '
               f'{e["source_simulated_seconds"]:.0f} s)' if e.get('calibration') else '')
        lines.append(f'  {what}: {e["num_jobs"]} jobs, {e["worker_seconds"] / 60:.1f} '
                     f'worker-min, schedule {e["simulated_seconds"] / 60:.1f} min{cal} => '
                     f'{e["estimated_seconds"] / 60:.1f} min')
    rows = sorted(est['idle']['per_row_worker_seconds'].items(), key=lambda kv: -kv[1])
    lines.append('  idle worker-minutes per row: ' + ', '.join(f'{k} {v / 60:.1f}'
                                                             for k, v in rows))
    return '\n'.join(lines)
