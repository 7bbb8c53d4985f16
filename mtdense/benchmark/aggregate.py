"""From the jobs' result files to the benchmark's results (JSON schema in docs/benchmarks.md).

Every number of the results is read from a job result: test metrics of the selected
runs, validation metrics of the tuning runs, the runs' parameter reports and timings,
the profiler's records. Statistics over seeds are computed here:

* per task: mean and sample standard deviation (ddof = 1) of the primary metric;
* Δm of each seed's run against the mean over seeds of its family's baseline row
  (single-task FT of the same backbone), then mean and standard deviation of those.
"""
from __future__ import annotations

import math
import os
import statistics
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mtdense.evaluation.functional import delta_m, primary_metrics
from mtdense.tasks import TASKS

__all__ = ['SCHEMA_VERSION', 'SELECTION_RULE', 'DELTA_M_RULE', 'LOADER_MIN_RATIO', 'primary',
           'selection_scores', 'select_lr', 'point_key', 'mean_std', 'collect']

SCHEMA_VERSION = 1
SELECTION_RULE = (
    'per row, the point of the grid (learning rate; and the backbone side\'s multiple of it, '
    'where the preset has several) whose tuning-seed run has the highest validation '
    'Δm against the mean of that row\'s grid runs (each task\'s primary metric relative to its '
    'mean over the grid, signed by direction, averaged over tasks); ties go to the smaller lr, '
    'then to one lr for all. The test split is not read.')
DELTA_M_RULE = ('Δm of each seed\'s test metrics against the mean over seeds of the family '
                'baseline\'s test metrics (single-task FT of the same backbone), '
                '(1/T) Σ_t s_t (M_t - B_t) / B_t x 100; mean and sample std (ddof=1) over seeds')
#: the data loader must deliver at least this multiple of the training throughput
LOADER_MIN_RATIO = 3.0


#: ``{task: value}`` of each task's primary metric in a ``task/metric`` dict
primary = primary_metrics


def selection_scores(val_by_lr: Mapping[float, Mapping[str, float]]) -> Dict[float, float]:
    """Validation Δm of every lr against the grid's per-task mean (see ``SELECTION_RULE``)."""
    prim = {lr: primary(m) for lr, m in val_by_lr.items()}
    tasks = sorted(set.intersection(*(set(p) for p in prim.values()))) if prim else []
    if not tasks:
        raise ValueError(f'selection: no task with a primary metric in every run '
                         f'({ {lr: sorted(p) for lr, p in prim.items()} })')
    ref = {t: statistics.fmean(p[t] for p in prim.values()) for t in tasks}
    if any(v == 0 for v in ref.values()):
        # every run scored 0 on a task: it cannot tell the grid apart, leave it out
        tasks = [t for t in tasks if ref[t] != 0]
        ref = {t: ref[t] for t in tasks}
    if not tasks:
        return {lr: 0.0 for lr in prim}
    return {lr: delta_m({t: p[t] for t in tasks}, ref) for lr, p in prim.items()}


def point_key(lr: float, mult: float = 1.0) -> str:
    """A grid point's key in ``selection['scores']``: ``'0.01'``, or ``'0.01/bb0.1'`` with a
    backbone-side multiple other than 1."""
    return str(lr) if mult == 1.0 else f'{lr}/bb{mult:g}'


def select_lr(val_by_point: Mapping[Any, Mapping[str, float]]) -> Dict[str, Any]:
    """``dict(lr, backbone_lr_mult, scores, rule)``: the selected grid point
    (``SELECTION_RULE``). Keys: learning rates, or ``(lr, backbone multiple)`` pairs."""
    points = {(k if isinstance(k, tuple) else (k, 1.0)): v for k, v in val_by_point.items()}
    scores = selection_scores(points)
    best = max(scores.values())
    lr, mult = min((k for k, v in scores.items() if v == best),
                   key=lambda k: (k[0], k[1] != 1.0, k[1]))
    return dict(lr=lr, backbone_lr_mult=mult,
                scores={point_key(*k): v for k, v in sorted(scores.items())},
                rule=SELECTION_RULE)


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
    """Mean, sample std (ddof=1; NaN for one value), n and the values."""
    vals = [float(v) for v in values]
    if not vals:
        return dict(mean=None, std=None, n=0, values=[])
    return dict(mean=statistics.fmean(vals),
                std=statistics.stdev(vals) if len(vals) > 1 else float('nan'),
                n=len(vals), values=vals)


def _rel(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def _params(report: Mapping[str, Any]) -> Dict[str, Any]:
    bb = report.get('backbone_report') or {}
    heads = report.get('heads') or {}
    return OrderedDict(
        trainable=int(report['trainable']), total=int(report['total']),
        backbone_side_trainable=int(report['backbone_trainable']),
        heads_trainable=int(sum(v['trainable'] for v in heads.values())),
        backbone_total=int(bb.get('backbone_total', report['backbone_total'])),
        percent_of_backbone=float(bb['trainable_percent_of_backbone'])
        if 'trainable_percent_of_backbone' in bb else None)


def _cost(profile_result: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Inference and training-step points of the row's profile, keyed by T (as strings)."""
    out: Dict[str, Any] = OrderedDict(infer_img_s={}, infer_latency_ms={}, infer_peak_mb={},
                                      train_s_per_iter={}, train_img_s={}, train_peak_mb={},
                                      errors=[])
    if not profile_result:
        out['errors'].append('no profile result')
        return out
    recs = profile_result['report']['results']
    for r in recs:
        t = str(r['num_tasks'])
        if r.get('error') or 'latency' not in r:
            out['errors'].append(f"T={t} {r['mode']}: {r.get('error')}")
            continue
        lat = r['latency']
        if r['mode'] == 'infer':
            out['infer_img_s'][t] = r['throughput_img_s']
            out['infer_latency_ms'][t] = dict(median=lat['median_ms'], p10=lat['p10_ms'],
                                              p90=lat['p90_ms'], n=lat['n'])
            out['infer_peak_mb'][t] = r['memory']['peak_mb']
        elif r['mode'] == 'train':
            out['train_s_per_iter'][t] = lat['median_ms'] / 1000.0
            out['train_img_s'][t] = r['throughput_img_s']
            out['train_peak_mb'][t] = r['memory']['peak_mb']
    if recs:
        out.update(batch_size=recs[0]['batch_size'], img_size=recs[0]['img_size'],
                   threads=recs[0].get('threads'), loadavg_before=recs[0].get('loadavg_before'),
                   memory_method=(recs[0].get('memory') or {}).get('method'))
    return out


def _median(values: List[float]) -> Optional[float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def collect(plan) -> Dict[str, Any]:
    """Rows, runs, selection, statistics and costs of ``plan``'s finished jobs."""
    from .compose import method_spec, model_delta
    preset = plan.preset
    rows_out: List[Dict[str, Any]] = []
    for row in plan.rows:
        entry: Dict[str, Any] = OrderedDict(
            key=row.key, label=row.label, family=row.family, role=plan.role(row),
            backbone_lr_mult=row.backbone_lr_mult,
            config=os.path.relpath(row.config), protocol=os.path.relpath(row.protocol),
            method=method_spec(row, preset.protocol_options),
            model_delta=model_delta(row, preset.protocol_options), status='complete',
            missing=[])
        tuning = plan.tuning_jobs(row)
        tres = [plan.done(j) for j in tuning]
        entry['tuning'] = [dict(lr=j['lr'], backbone_lr_mult=j['backbone_lr_mult'],
                                seed=preset.tuning_seed,
                                val=primary(r['val_metrics']) if r else None,
                                result=_rel(j['result'], plan.out_dir))
                           for j, r in zip(tuning, tres)]
        sel = plan.selection(row)
        entry['selection'] = sel
        runs = []
        if sel is not None:
            for seed in preset.seeds:
                tj = plan.train_job(row, sel['lr'], seed, sel['backbone_lr_mult'])
                xj = plan.test_job(row, tj)
                tr, te = plan.done(tj), plan.done(xj)
                if tr is None or te is None:
                    entry['missing'].append(xj['id'] if tr is not None else tj['id'])
                    continue
                timing = tr['timing']
                runs.append(OrderedDict(
                    seed=seed, lr=sel['lr'], backbone_lr_mult=sel['backbone_lr_mult'],
                    run=plan.run_name(sel['lr'], seed, sel['backbone_lr_mult']),
                    test=primary(te['test_metrics']),
                    test_all=te['test_metrics'], val=primary(tr['val_metrics']),
                    params=_params(tr['params']), train_s_per_iter=timing['compute_s_per_iter'],
                    data_s_per_iter=timing['data_s_per_iter'], train_img_s=timing['train_img_s'],
                    loader_img_s=timing['loader_img_s'], iters=tr['iters'],
                    num_val=tr['num_val'], seconds=tr['seconds'],
                    test_seconds=te['seconds']['total'], num_test=te['num_test'],
                    train_result=_rel(tj['result'], plan.out_dir),
                    test_result=_rel(xj['result'], plan.out_dir)))
        else:
            entry['missing'] += [j['id'] for j, r in zip(tuning, tres) if r is None] or \
                [plan.profile_job(row)['id']]  # the grid waits for the row's profile
        entry['runs'] = runs
        if entry['missing']:
            entry['status'] = 'incomplete'
        tasks = sorted(set.intersection(*(set(r['test']) for r in runs)), key=list(TASKS).index) \
            if runs else []
        entry['test'] = OrderedDict((t, mean_std([r['test'][t] for r in runs])) for t in tasks)
        entry['params'] = runs[0]['params'] if runs else None
        entry['cost'] = _cost(plan.done(plan.profile_job(row)))
        tr_img = _median([r['train_img_s'] for r in runs])
        ld_img = _median([r['loader_img_s'] for r in runs])
        ratio = ld_img / tr_img if tr_img and ld_img else None
        entry['loader'] = OrderedDict(
            loader_img_s=ld_img, train_img_s=tr_img, ratio=ratio,
            min_ratio=LOADER_MIN_RATIO, meets=None if ratio is None else ratio >= LOADER_MIN_RATIO,
            note='medians over the seeds\' runs of batch / median per-iteration seconds; loader = '
                 'fetching + collating a batch in the training process (num_workers=0)')
        rows_out.append(entry)

    baselines = OrderedDict()
    for fam in sorted({r['family'] for r in rows_out}):
        base = next(r for r in rows_out if r['family'] == fam and r['role'] == 'baseline')
        if base['runs']:
            baselines[fam] = dict(row=base['key'], label=base['label'],
                                  metrics={t: v['mean'] for t, v in base['test'].items()},
                                  n=len(base['runs']))
    for entry in rows_out:
        base = baselines.get(entry['family'])
        for r in entry['runs']:
            r['delta_m'] = (delta_m({t: r['test'][t] for t in base['metrics']}, base['metrics'])
                            if base and all(t in r['test'] for t in base['metrics']) else None)
        vals = [r['delta_m'] for r in entry['runs'] if r['delta_m'] is not None]
        entry['delta_m'] = mean_std(vals)
    _gap_recovered(rows_out)
    return OrderedDict(rows=rows_out, baselines=baselines)


#: below this |Δm| of decoder-only, the gap is within seed noise and the share is not shown
MIN_GAP = 1.0


def _gap_recovered(rows: List[Dict[str, Any]]) -> None:
    """``gap_recovered`` of every row of a family that has a ``<family>_decoder_only`` row:
    the share (%) of the decoder-only -> single-task FT gap that the row closes, per seed
    run: (Δm_run − mean Δm_decoder-only) / (0 − mean Δm_decoder-only) × 100 (single-task FT
    is Δm 0 by definition), then mean ± std over the runs."""
    for entry in rows:
        dec = next((r for r in rows if r['key'] == f'{entry["family"]}_decoder_only'), None)
        gap = None if dec is None else dec['delta_m'].get('mean')
        if gap is None:
            entry['gap_recovered'] = None
            continue
        info = OrderedDict(decoder_only=dec['key'], decoder_only_delta_m=gap, min_gap=MIN_GAP)
        if -gap < MIN_GAP:
            info.update(mean=None, std=None, n=0, values=[],
                        note=f'decoder-only (Δm {gap:+.2f}) is not {MIN_GAP:g} Δm point or more '
                             'below single-task FT: no gap to recover')
        else:
            vals = [(r['delta_m'] - gap) / -gap * 100.0 for r in entry['runs']
                    if r['delta_m'] is not None]
            info.update(mean_std(vals))
        entry['gap_recovered'] = info
