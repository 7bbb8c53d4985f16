"""The outputs of a profiling report: CSV (points, paired ratios), JSON and markdown tables."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .report import find_ratio

__all__ = ['write_csv', 'write_ratios_csv', 'write_json', 'format_summary', 'CSV_COLUMNS',
           'RATIO_COLUMNS']


CSV_COLUMNS = [
    'label', 'config', 'method', 'mode', 'num_tasks', 'img_size', 'batch_size', 'device', 'dtype',
    'channels_last', 'compile', 'threads', 'allocator_env', 'schedule', 'infer_forward',
    'optimizer', 'throughput_img_s', 'latency_median_ms', 'latency_p10_ms', 'latency_p90_ms',
    'latency_iqr_ms', 'latency_n', 'backbone_latency_median_ms', 'cpu_median_ms',
    'cpu_util_median', 'contended', 'page_faults_median', 'loadavg_1m_median', 'peak_mem_mb',
    'peak_mem_increase_mb',
    'mem_method', 'mem_scope', 'gflops_total', 'gflops_backbone', 'gflops_heads', 'gflops_other',
    'params_total', 'params_trainable', 'params_backbone_trainable', 'params_heads_trainable',
    'error',
]


def _csv_row(r: Dict[str, Any]) -> Dict[str, Any]:
    lat, mem, fl, pr = (r.get('latency') or {}), (r.get('memory') or {}), (r.get('flops') or {}), \
        (r.get('params') or {})
    bl, cpu, load = r.get('backbone_latency') or {}, r.get('cpu') or {}, r.get('loadavg_1m') or {}
    g = (lambda k: fl[k] / 1e9 if k in fl else None)
    return dict(
        label=r['label'], config=r.get('config'), method=r.get('method'), mode=r['mode'],
        num_tasks=r['num_tasks'], img_size=r['img_size'], batch_size=r['batch_size'],
        device=r['device'], dtype=r['dtype'], channels_last=r['channels_last'],
        compile=r['compile'], threads=r.get('threads'),
        allocator_env=';'.join(f'{k}={v}' for k, v in (r.get('allocator_env') or {}).items()),
        schedule=r.get('schedule'), infer_forward=r.get('infer_forward'),
        optimizer=r.get('optimizer'), throughput_img_s=r.get('throughput_img_s'),
        latency_median_ms=lat.get('median_ms'), latency_p10_ms=lat.get('p10_ms'),
        latency_p90_ms=lat.get('p90_ms'), latency_iqr_ms=lat.get('iqr_ms'), latency_n=lat.get('n'),
        backbone_latency_median_ms=bl.get('median_ms'), cpu_median_ms=cpu.get('median_ms'),
        cpu_util_median=cpu.get('util_median'), contended=cpu.get('contended'),
        page_faults_median=(r.get('page_faults') or {}).get('median'),
        loadavg_1m_median=load.get('median'), peak_mem_mb=mem.get('peak_mb'),
        peak_mem_increase_mb=mem.get('increase_mb'), mem_method=mem.get('method'),
        mem_scope=mem.get('scope'), gflops_total=g('total'), gflops_backbone=g('backbone'),
        gflops_heads=g('heads'), gflops_other=g('other'), params_total=pr.get('total'),
        params_trainable=pr.get('trainable'),
        params_backbone_trainable=pr.get('backbone_trainable'),
        params_heads_trainable=pr.get('heads_trainable'), error=r.get('error'))


def _fmt(v: Any) -> Any:
    return '' if v is None else (f'{v:.6g}' if isinstance(v, float) else v)


def write_csv(report: Dict[str, Any], path: str) -> None:
    """One row per (config, T, mode) measurement, flat columns (``CSV_COLUMNS``)."""
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in report['results']:
            w.writerow({k: _fmt(v) for k, v in _csv_row(r).items()})


RATIO_COLUMNS = ['kind', 'mode', 'label', 'num_tasks', 'reference_label', 'reference_num_tasks',
                 'quantity', 'median', 'ci95_lo', 'ci95_hi', 'p10', 'p90', 'n', 'pairing']


def write_ratios_csv(report: Dict[str, Any], path: str) -> None:
    """One row per paired ratio of ``summary.paired``."""
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=RATIO_COLUMNS)
        w.writeheader()
        for e in report['summary']['paired']:
            ci = e.get('ci95') or [None, None]
            w.writerow({k: _fmt(v) for k, v in dict(
                kind=e['kind'], mode=e['mode'], label=e['label'], num_tasks=e['num_tasks'],
                reference_label=e['reference']['label'],
                reference_num_tasks=e['reference']['num_tasks'], quantity=e['quantity'],
                median=e['median'], ci95_lo=ci[0], ci95_hi=ci[1], p10=e.get('p10'),
                p90=e.get('p90'), n=e.get('n'), pairing=e.get('pairing')).items()})


def write_json(report: Dict[str, Any], path: str) -> None:
    def default(o):
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f'write_json: cannot serialise {type(o).__name__}')
    with open(path, 'w') as f:
        json.dump(report, f, indent=1, default=default, allow_nan=True)
        f.write('\n')


# --------------------------------------------------------------------------- markdown
def _ci(e: Optional[Dict[str, Any]]) -> str:
    if e is None:
        return '-'
    ci = e.get('ci95')
    return f"{e['median']:.3f}" + (f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else ' (unpaired)')


def _points_table(records: Sequence[Dict[str, Any]]) -> List[str]:
    lines = ['| config | T | mode | img/s | median ms [p10, p90] | backbone ms | cpu ms | cpu/wall '
             '| faults | load 1m | peak MB (+incr) | GFLOPs bb / heads | trainable params |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        t = r['num_tasks'] if r['num_tasks'] is not None else '-'
        if r.get('error'):
            lines.append(f"| {r['label']} | {t} | {r['mode']} | error: {r['error']} |"
                         ' | | | | | | | | |')
            continue
        fl = r.get('flops')
        flops = f"{fl['backbone'] / 1e9:.3f} / {fl['heads'] / 1e9:.3f}" if fl else '-'
        params = (r.get('params') or {}).get('trainable', '-')
        if 'latency' not in r:  # count mode
            lines.append(f"| {r['label']} | {t} | {r['mode']} | - | - | - | - | - | - | - | - "
                         f'| {flops} | {params} |')
            continue
        lat, mem, bb = r['latency'], r.get('memory') or {}, r.get('backbone_latency')
        cpu, load = r.get('cpu') or {}, r.get('loadavg_1m') or {}
        peak = mem.get('peak_mb')
        peak_s = (f"{peak:.0f} (+{mem['increase_mb']:.0f})" if isinstance(peak, float)
                  and peak == peak else '-')
        util = cpu.get('util_median')
        cells = [r['label'], t, r['mode'], f"{r['throughput_img_s']:.2f}",
                 f"{lat['median_ms']:.1f} [{lat['p10_ms']:.1f}, {lat['p90_ms']:.1f}]",
                 f"{bb['median_ms']:.1f}" if bb else '-',
                 f"{cpu['median_ms']:.1f}" if cpu.get('median_ms') else '-',
                 (f'{util:.2f}' + (' contended' if cpu.get('contended') else '')) if util else '-',
                 f"{(r.get('page_faults') or {}).get('median', '-'):.0f}"
                 if r.get('page_faults') else '-',
                 f"{load['median']:.1f}" if load else '-', peak_s, flops, params]
        lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
    return lines


def format_summary(report: Dict[str, Any]) -> str:
    """Markdown: the points, the T-scaling and vs-backbone ratios with CIs, the targets."""
    records, summary = report['results'], report['summary']
    paired = summary.get('paired', [])
    lines = _points_table(records)
    scaling = [e for e in paired if e['kind'] == 't_scaling' and e['quantity'] == 'throughput']
    if scaling:
        lines += ['', '| config | mode | T | throughput vs T=T0: median [95% CI] | p10..p90 of '
                  'rounds | CPU time(T) / CPU time(T0) | backbone time(T) / (T0) | n |',
                  '|---|---|---|---|---|---|---|---|']
        for e in scaling:
            bb = find_ratio(paired, 'backbone_part', e['mode'], e['label'], e['num_tasks'])
            cpu = find_ratio(paired, 't_scaling', e['mode'], e['label'], e['num_tasks'],
                             'cpu_time')
            spread = (f"{e['p10']:.3f}..{e['p90']:.3f}" if e.get('p10') is not None else '-')
            lines.append(f"| {e['label']} | {e['mode']} | {e['num_tasks']} (T0="
                         f"{e['reference']['num_tasks']}) | {_ci(e)} | {spread} | {_ci(cpu)} | "
                         f"{_ci(bb)} | {e.get('n') or '-'} |")
    alone = [e for e in paired if e['kind'] == 'vs_backbone']
    if alone:
        lines += ['', '| config | T | latency / backbone alone: median [95% CI] |', '|---|---|---|']
        lines += [f"| {e['label']} | {e['num_tasks']} | {_ci(e)} |" for e in alone]
    lines += ['', '| target | config | value [95% CI] | status |', '|---|---|---|---|']
    for tg in summary['targets']:
        v = tg['value']
        if isinstance(v, dict):
            v = ', '.join(f'T={k}: {x:.3f}' for k, x in v.items())
        elif isinstance(v, float):
            ci = tg.get('ci95')
            v = f'{v:.4f}' + (f' [{ci[0]:.3f}, {ci[1]:.3f}]' if ci else '')
        status = tg['status'] + (f" ({tg['ci_verdict']})" if tg.get('ci_verdict') else '')
        lines.append(f"| {tg['target']} | {tg['label']} | {v} | {status} |")
    return '\n'.join(lines)
