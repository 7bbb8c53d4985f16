"""Estimate a preset's duration from the measured per-job times of a finished benchmark.

Each job of the target preset gets a duration derived from the measured run of the same
row (``benchmark.json`` + ``job_times.jsonl`` of the finished folder):

* training run: measured worker time + (target iterations - measured iterations) x the
  row's measured seconds per iteration (step + loading, median over its runs) + the
  validation time scaled by the number of validation scenes;
* test evaluation: measured time with the evaluation part scaled by the test scenes;
* upstream: measured time + the extra iterations x its seconds per iteration;
* profile: the measured time (the profiler settings of the presets are close; see the
  note in the output);
* data rendering: measured seconds per scene.

The jobs are then scheduled on ``workers`` slots with the benchmark's own order
(upstream, profiles, training runs longest first, tests; a row's other seeds after its
tuning runs). The same simulation of the *measured* preset, compared with its measured
wall time, gives a calibration factor for what the simulation leaves out (dispatch,
orchestration, the load of the machine), which is applied to the target.
"""
from __future__ import annotations

import heapq
import json
import os
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .presets import Preset

__all__ = ['estimate', 'format_estimate', 'simulate']


def _times(folder: str) -> Dict[str, float]:
    path = os.path.join(folder, 'job_times.jsonl')
    out: Dict[str, float] = {}
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: the estimate needs the per-job times of a '
                                'finished benchmark')
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                if rec.get('ok'):
                    out[rec['id']] = float(rec['seconds'])  # the latest record of a job wins
    return out


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


def _row_model(row: Mapping[str, Any], times: Mapping[str, float]) -> Dict[str, Any]:
    """Measured per-row quantities: seconds per iteration, fixed part of a training job,
    validation and test seconds per scene."""
    runs = row['runs']
    if not runs:
        raise ValueError(f'row {row["key"]}: no finished runs to estimate from')
    per_iter, fixed, val_per, test_fixed, test_per = [], [], [], [], []
    for r in runs:
        name = f'lr{r["lr"]:g}_s{r["seed"]}'
        train_id, test_id = f'train/{row["key"]}/{name}', f'test/{row["key"]}/{name}'
        # per iteration: the step and loading medians; the rest of the job is fixed set-up
        # (process-side config parsing, runner build, checkpointing) and validation
        s_it = r['train_s_per_iter'] + (r['data_s_per_iter'] or 0.0)
        per_iter.append(s_it)
        if train_id in times:
            fixed.append(times[train_id] - r['iters'] * s_it - r['seconds']['val'])
        val_per.append(r['seconds']['val'] / max(1, r['num_val']))
        if test_id in times:
            test_per.append(r['test_seconds'] / max(1, r['num_test']))
            test_fixed.append(times[test_id] - r['test_seconds'])
    return dict(s_per_iter=statistics.median(per_iter),
                fixed=statistics.median(fixed) if fixed else 0.0,
                val_per_scene=statistics.median(val_per),
                test_fixed=statistics.median(test_fixed) if test_fixed else 0.0,
                test_per_scene=statistics.median(test_per) if test_per else 0.0)


def _jobs_for(preset: Preset, measured: Mapping[str, Any], times: Mapping[str, float],
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
        t = times.get('upstream', up['seconds']['total'])
        s_it = up['timing']['compute_s_per_iter'] + (up['timing']['data_s_per_iter'] or 0.0)
        jobs.append(dict(id='upstream', deps=[], priority=0, cost=0.0,
                         seconds=t + (preset.upstream_iters - up['iters']) * s_it))
    for key in preset.rows:
        row, m = rows[key], models[key]
        deps = ['upstream'] if row['family'] in families_up else []
        jobs.append(dict(id=f'profile/{key}', deps=[], priority=1, cost=10.0,
                         seconds=times.get(f'profile/{key}', 0.0)))
        run_s = m['fixed'] + preset.iters * m['s_per_iter'] + n_val * m['val_per_scene']
        tuning = [f'train/{key}/tune{i}' for i in range(len(preset.lrs))]
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


def estimate(measured: Mapping[str, Any], preset: Preset, folder: Optional[str] = None
             ) -> Dict[str, Any]:
    """Estimated wall seconds of ``preset`` from the finished benchmark ``measured``
    (``benchmark.json``; ``folder`` holds its ``job_times.jsonl``, default: the folder
    its ``files`` were written to, given by the caller)."""
    folder = folder or measured.get('_folder')
    if folder is None:
        raise ValueError('estimate: give the measured benchmark folder')
    times = _times(folder)
    models = {r['key']: _row_model(r, times) for r in measured['rows'] if r['runs']}
    mp = measured['preset']
    source = Preset(**{k: (tuple(v) if isinstance(v, list) and k != 'profile' else v)
                       for k, v in mp.items() if k != 'tuning_seed'})
    src_jobs, src_prep = _jobs_for(source, measured, times, models)
    inv = _fresh_invocation(folder) or measured['invocation']
    fixed_src = (inv.get('prepare_seconds') or src_prep) + (inv.get('finalize_seconds') or 0.0)
    sim_src = simulate(src_jobs, source.workers) + fixed_src
    calib = None
    if not inv.get('resumed_jobs') and inv.get('wall_seconds'):
        calib = inv['wall_seconds'] / sim_src
    tgt_jobs, tgt_prep = _jobs_for(preset, measured, times, models)
    sim_tgt = simulate(tgt_jobs, preset.workers) + tgt_prep + (inv.get('finalize_seconds') or 0)
    per_row = defaultdict(float)
    for j in tgt_jobs:
        if '/' in j['id']:
            per_row[j['id'].split('/')[1]] += j['seconds']
    return dict(target=preset.name, source=mp['name'], source_wall_seconds=inv.get('wall_seconds'),
                source_simulated_seconds=sim_src, calibration=calib,
                simulated_seconds=sim_tgt,
                estimated_seconds=sim_tgt * calib if calib else sim_tgt,
                worker_seconds=sum(j['seconds'] for j in tgt_jobs),
                per_row_worker_seconds=dict(per_row),
                row_models=models, num_jobs=len(tgt_jobs),
                note='profile jobs taken at their measured time (the presets differ in repeats '
                     'and warm-up only); loads of the measured machine carry over')


def format_estimate(est: Mapping[str, Any]) -> str:
    """A short text report of :func:`estimate`."""
    lines = [f'estimate for preset {est["target"]!r} from the measured {est["source"]!r} run:',
             f'  {est["num_jobs"]} jobs, {est["worker_seconds"] / 60:.1f} worker-minutes',
             f'  simulated schedule {est["simulated_seconds"] / 60:.1f} min'
             + (f' x calibration {est["calibration"]:.2f} (measured {est["source_wall_seconds"]:.0f}'
                f' s vs simulated {est["source_simulated_seconds"]:.0f} s for the source run)'
                if est['calibration'] else ' (no calibration: the source run was resumed)'),
             f'  => estimated wall time {est["estimated_seconds"] / 60:.1f} min',
             '  worker-minutes per row: ' + ', '.join(
                 f'{k} {v / 60:.1f}' for k, v in sorted(est['per_row_worker_seconds'].items(),
                                                      key=lambda kv: -kv[1]))]
    return '\n'.join(lines)
