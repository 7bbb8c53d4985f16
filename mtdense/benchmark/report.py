"""The benchmark's tables: CSV (one row per method) and markdown (quality, cost, tuning)."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mtdense.tasks import TASKS, get_task_spec

from .aggregate import point_key

__all__ = ['write_csv', 'write_markdown', 'markdown', 'table_task_counts', 'measured_invocation',
           'format_pm', 'format_gap', 'format_lr']

_DECIMALS = dict(depth=3)


def _num(v: Optional[float], nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '–'
    return f'{v:.{nd}f}'


def format_pm(stat: Optional[Mapping[str, Any]], nd: int = 2, signed: bool = False) -> str:
    if not stat or stat.get('mean') is None:
        return '–'
    m = stat['mean'] + 0.0 if round(stat['mean'], nd) != 0 else 0.0  # no '-0.00'
    mean = f'{m:+.{nd}f}' if signed else f'{m:.{nd}f}'
    std = stat.get('std')
    if std is None or not math.isfinite(std):
        return mean
    return f'{mean} ± {std:.{nd}f}'


def format_gap(gap: Optional[Mapping[str, Any]]) -> str:
    """A row's ``gap_recovered`` (%, no decimals) or '–' where it is not defined."""
    return format_pm(gap, 0, signed=True) if gap and gap.get('n') else '–'


def _arrow(task: str) -> str:
    return '↑' if get_task_spec(task).higher_is_better else '↓'


def _tasks(results: Mapping[str, Any]) -> List[str]:
    seen = {t for r in results['rows'] for t in r['test']}
    return [t for t in TASKS if t in seen]


def table_task_counts(results: Mapping[str, Any]) -> Dict[str, List[int]]:
    """Task counts shown in the cost table: inference at 1 and the real T, training step
    at 1 and the largest profiled T."""
    profiled = sorted(int(t) for t in results['preset']['profile']['num_tasks'])
    real = max((len(p['fixed_model_keys'].get('model.tasks', []))
                for p in results['protocol'].values()), default=1)
    infer = sorted({1, real} & set(profiled)) or profiled[:1]
    train = sorted({1, profiled[-1]})
    return dict(infer=infer, train=train)


def _percent(p: Optional[Mapping[str, Any]]) -> str:
    if not p or p.get('percent_of_backbone') is None:
        return '–'
    v = p['percent_of_backbone']
    return f'{v:.3g}%' if v < 10 else f'{v:.0f}%'


def measured_invocation(results: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The first invocation that ran every job itself (nothing found finished, nothing
    left): the measured run of the folder."""
    for inv in results.get('invocations') or []:
        if not inv.get('resumed_jobs') and inv.get('jobs_done') == inv.get('jobs_total'):
            return inv
    return None


def _timing_line(results: Mapping[str, Any]) -> str:
    inv = results['invocation']
    fresh = measured_invocation(results)
    if fresh is not None:
        text = (f'Measured run: {fresh["wall_seconds"]:.0f} s wall ({fresh["created"]}), load '
                f'average {fresh.get("loadavg_start")} at its start and '
                f'{fresh.get("loadavg_end")} at its end (1/5/15 min; the machine is shared).')
        if fresh is not inv and inv.get('resumed_jobs'):
            text += (f' This report: a later invocation ({inv["wall_seconds"]:.0f} s) that found '
                     'the jobs finished and collected them again.')
        return text
    return (f'This invocation: {inv["wall_seconds"]:.0f} s wall, '
            f'{inv.get("resumed_jobs", 0)} jobs found finished from earlier invocations.')


def markdown(results: Mapping[str, Any]) -> str:
    """The markdown report (the quality and cost tables, tuning and settings)."""
    tasks = _tasks(results)
    ts = table_task_counts(results)
    m = results['machine']
    pre = results['preset']
    jobs = results['jobs']
    lines = [f'# Method benchmark: preset `{pre["name"]}`', '',
             f'{results["created"]}; {m.get("cpu_model")} ({m.get("cpu_count_logical")} logical '
             f'CPUs, {m.get("mem_total_gb")} GB), torch {m.get("torch")}, one thread per '
             f'process, {pre["workers"]} workers.', '', _timing_line(results), '',
             f'Jobs: {jobs["done"]}/{jobs["total"]} done; together '
             f'{_num(jobs.get("worker_wall_seconds"), 0)} s of worker wall time and '
             f'{_num(jobs.get("worker_cpu_seconds"), 0)} s of CPU time.', '',
             f'Every row: {pre["iters"]} iterations, lr grid {list(pre["lrs"])}{_mults_text(pre)} '
             '(chosen on the '
             f'validation split with seed {results["tuning_seed"]}), seeds {list(pre["seeds"])}; '
             f'{pre["num_trainval"]} training/validation scenes (seed {pre["data_seed"]}), '
             f'metrics on {pre["num_test"]} held-out test scenes (seed {pre["test_seed"]}). '
             'Mean ± sample std over seeds; Δm against the same backbone\'s '
             f'{_baseline_names(results)}.', '']
    lines += _upstream_lines(results)
    head = ['method', 'backbone', 'lr'] + [
        f'{t} {get_task_spec(t).primary_metric} {_arrow(t)}' for t in tasks] + [
        'Δm (%) ↑', 'gap recovered (%)', 'trainable params', '% of backbone']
    lines += ['## Quality (test split)', '', '| ' + ' | '.join(head) + ' |',
              '|' + '---|' * 3 + '---:|' * (len(head) - 3)]
    for r in results['rows']:
        cells = [r['label'] + ('' if r['status'] == 'complete' else ' (incomplete)'), r['family'],
                 format_lr(r)]
        cells += [format_pm(r['test'].get(t), _DECIMALS.get(t, 2)) for t in tasks]
        cells += [format_pm(r['delta_m'], 2, signed=True), format_gap(r.get('gap_recovered')),
                  f'{r["params"]["trainable"]:,}' if r.get('params') else '–',
                  _percent(r.get('params'))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    c0 = next((r['cost'] for r in results['rows'] if r['cost'].get('batch_size')), {})
    lines += ['', f'## Cost (profiler: batch {c0.get("batch_size", "?")}, '
                  f'{c0.get("img_size", "?")}² input, {c0.get("threads", "?")} thread, CPU)', '']
    head = (['method', 'backbone'] + [f'train s/iter T={t}' for t in ts['train']]
            + [f'train peak MB T={t}' for t in ts['train']]
            + [f'infer img/s T={t}' for t in ts['infer']]
            + ['runs: train img/s', 'loader img/s', 'loader / train'])
    lines += ['| ' + ' | '.join(head) + ' |', '|---|---|' + '---:|' * (len(head) - 2)]
    for r in results['rows']:
        c, ld = r['cost'], r['loader']
        cells = [r['label'], r['family']]
        cells += [_num(c['train_s_per_iter'].get(str(t)), 3) for t in ts['train']]
        cells += [_num(c['train_peak_mb'].get(str(t)), 0) for t in ts['train']]
        cells += [_num(c['infer_img_s'].get(str(t)), 1) for t in ts['infer']]
        ratio = _num(ld.get('ratio'), 1) + ('×' if ld.get('ratio') is not None else '')
        if ld.get('meets') is False:
            ratio += f' (< {ld["min_ratio"]:g}×)'
        cells += [_num(ld.get('train_img_s'), 1), _num(ld.get('loader_img_s'), 0), ratio]
        lines.append('| ' + ' | '.join(cells) + ' |')
    points = [(lr, m) for m in pre.get('backbone_lr_mults', [1.0]) for lr in pre['lrs']]
    lines += ['', '## Tuning (validation score of each grid point; the selection rule is in the '
                  'JSON)', '',
              '| method | backbone | ' + ' | '.join(
                  f'lr {lr:g}' + ('' if m == 1.0 else f', backbone ×{m:g}') for lr, m in points)
              + ' | chosen |',
              '|---|---|' + '---:|' * (len(points) + 1)]
    for r in results['rows']:
        sel = r.get('selection')
        scores = sel['scores'] if sel else {}
        cells = [r['label'], r['family']] + [_num(scores.get(point_key(lr, m)), 2)
                                             for lr, m in points]
        cells.append(format_lr(r))
        lines.append('| ' + ' | '.join(cells) + ' |')
    incomplete = [r for r in results['rows'] if r['status'] != 'complete']
    if incomplete:
        lines += ['', 'Incomplete rows (re-run the command to finish them): ' + '; '.join(
            f'{r["label"]} ({r["family"]}): {", ".join(r["missing"])}' for r in incomplete)]
    return '\n'.join(lines) + '\n'


def _mults_text(pre: Mapping[str, Any]) -> str:
    mults = list(pre.get('backbone_lr_mults') or [1.0])
    return '' if mults == [1.0] else (f' × backbone-side lr multiples {mults} (for the rows '
                                      'whose backbone side trains)')


def _chosen_backbone_mult(row: Mapping[str, Any]) -> float:
    """The backbone side's lr multiple of a results row's chosen runs: the row's own times
    the selected grid point's (results written before either existed: 1)."""
    return row.get('backbone_lr_mult', 1.0) * (row.get('selection') or {}).get(
        'backbone_lr_mult', 1.0)


def format_lr(row: Mapping[str, Any]) -> str:
    """The chosen lr of a results row, and its backbone side's multiple of it where that
    is not 1."""
    sel = row.get('selection')
    if not sel:
        return '–'
    mult = _chosen_backbone_mult(row)
    return f'{sel["lr"]:g}' if mult == 1.0 else f'{sel["lr"]:g} (backbone ×{mult:g})'


def _baseline_names(results: Mapping[str, Any]) -> str:
    """'single-task FT' (the baselines' labels, one per family, as the table names them)."""
    labels = sorted({b['label'] for b in (results.get('baselines') or {}).values()})
    return ' / '.join(labels) if labels else 'baseline row (not finished)'


def _upstream_lines(results: Dict[str, Any]) -> List[str]:
    """What the Swin upstream trained on, and which jobs came from another folder."""
    pre, out = results['preset'], []
    if results.get('upstream'):
        up = pre.get('upstream_data')
        where = ('the training split (the target distribution)' if not up else
                 f'its own rendering: {up["num"]} scenes, seed {up["seed"]}, scene settings '
                 f'{json.dumps(up.get("scene") or {}, sort_keys=True)}')
        out += [f'Swin upstream: {pre["upstream_iters"]} iterations on {where}.', '']
    jobs = results.get('jobs') or {}
    if jobs.get('reused_count'):
        where = ', '.join(f'`{os.path.relpath(d)}`' for d in jobs.get('reused') or [])
        out += [f'{jobs["reused_count"]} of the {jobs["total"]} jobs were taken from {where} '
                '(identical spec hash: the same config, data and starting weights), not run '
                'here.', '']
    return out


def write_markdown(results: Mapping[str, Any], path: str) -> None:
    with open(path, 'w') as f:
        f.write(markdown(results))


def _csv_columns(tasks: Sequence[str], ts: Mapping[str, List[int]]) -> List[str]:
    cols = ['key', 'label', 'family', 'role', 'status', 'lr', 'backbone_lr_mult', 'n_seeds']
    for t in tasks:
        metric = get_task_spec(t).primary_metric
        cols += [f'{t}_{metric}_mean', f'{t}_{metric}_std']
    cols += ['delta_m_mean', 'delta_m_std', 'gap_recovered_mean', 'gap_recovered_std',
             'trainable', 'backbone_side_trainable',
             'heads_trainable', 'backbone_total', 'percent_of_backbone']
    cols += [f'train_s_per_iter_T{t}' for t in ts['train']]
    cols += [f'train_peak_mb_T{t}' for t in ts['train']]
    cols += [f'infer_img_s_T{t}' for t in ts['infer']]
    cols += ['runs_train_img_s', 'loader_img_s', 'loader_ratio', 'loader_meets']
    return cols


def write_csv(results: Mapping[str, Any], path: str) -> None:
    """One line per row (method), flat columns."""
    tasks = _tasks(results)
    ts = table_task_counts(results)
    cols = _csv_columns(tasks, ts)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in results['rows']:
            p = r.get('params') or {}
            c, ld = r['cost'], r['loader']
            line: Dict[str, Any] = dict(key=r['key'], label=r['label'], family=r['family'],
                                        role=r['role'], status=r['status'],
                                        lr=r['selection']['lr'] if r.get('selection') else None,
                                        backbone_lr_mult=_chosen_backbone_mult(r),
                                        n_seeds=len(r['runs']))
            for t in tasks:
                metric = get_task_spec(t).primary_metric
                s = r['test'].get(t) or {}
                line[f'{t}_{metric}_mean'], line[f'{t}_{metric}_std'] = s.get('mean'), s.get('std')
            line.update(delta_m_mean=r['delta_m'].get('mean'), delta_m_std=r['delta_m'].get('std'))
            gap = r.get('gap_recovered') or {}
            line.update(gap_recovered_mean=gap.get('mean'), gap_recovered_std=gap.get('std'))
            for k in ('trainable', 'backbone_side_trainable', 'heads_trainable', 'backbone_total',
                      'percent_of_backbone'):
                line[k] = p.get(k)
            for t in ts['train']:
                line[f'train_s_per_iter_T{t}'] = c['train_s_per_iter'].get(str(t))
                line[f'train_peak_mb_T{t}'] = c['train_peak_mb'].get(str(t))
            for t in ts['infer']:
                line[f'infer_img_s_T{t}'] = c['infer_img_s'].get(str(t))
            line.update(runs_train_img_s=ld.get('train_img_s'), loader_img_s=ld.get('loader_img_s'),
                        loader_ratio=ld.get('ratio'), loader_meets=ld.get('meets'))
            w.writerow({k: ('' if v is None else (f'{v:.6g}' if isinstance(v, float) else v))
                        for k, v in line.items()})
