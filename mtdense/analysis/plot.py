"""One PNG summarising a task-scaling report (matplotlib, Agg backend).

Only what was measured gets a panel: per timed mode the absolute throughput (p10..p90
bars, the bare backbone as the ceiling) beside the T-scaling ratio (paired medians
with their 95 % bootstrap bands and the target line); then FLOPs and peak memory when
the report has them. The caption says the device, threads, allocator, schedule and the
load during the rounds.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .report import TARGETS, find_ratio, summarize
from .settings import BACKBONE_ALONE

__all__ = ['plot_report', 'caption']


def _points(records, label: str, mode: str) -> List[Dict[str, Any]]:
    return sorted((r for r in records if r['label'] == label and r['mode'] == mode
                   and not r.get('error') and 'latency' in r), key=lambda r: r['num_tasks'])


def _valid(v) -> bool:
    return isinstance(v, (int, float)) and v == v


def caption(report: Dict[str, Any]) -> str:
    """Device, threads, allocator, schedule and load of a report, in two lines."""
    s, m = report['settings'], report.get('machine', {})
    recs = [r for r in report['results'] if 'latency' in r] or report['results']
    threads = sorted({r.get('threads') for r in recs if r.get('threads') is not None})
    env = (recs[0].get('allocator_env') if recs else None) or {}
    alloc = s.get('cpu_alloc', 'system') + (' (' + ', '.join(f'{k}={v}' for k, v in env.items())
                                            + ')' if env else ' (glibc defaults)')
    if s['device'].startswith('cuda'):
        alloc = 'CUDA caching allocator'
    sched = report.get('schedule') or {}
    load = (report.get('load') or {}).get('rounds_1m')
    load_s = (f"load 1m {load['min']:.1f}–{load['median']:.1f}–{load['max']:.1f} (min–median–max "
              'over rounds)' if load else f"load before {(report.get('load') or {}).get('before')}")
    line1 = (f"{m.get('device_name', s['device'])} ({s['device']}), {s['img_size']} px, batch "
             f"{s['batch_size']}, {'bf16 autocast' if s.get('bf16') else 'fp32'}, forward "
             f"{s.get('infer_forward', 'tensor')}, torch {m.get('torch', '')}")
    utils = sorted(r['cpu']['util_median'] for r in recs if (r.get('cpu') or {}).get('util_median'))
    util_s = (f'; cpu/wall per point {utils[0]:.2f}–{utils[-1]:.2f}' if utils else '')
    line2 = (f"threads {', '.join(map(str, threads)) or '?'}; allocator {alloc}; "
             f"{sched.get('kind', 'sequential')} rounds: {sched.get('rounds', '?')} x "
             f"{sched.get('round_iters', 1)} it, isolate {sched.get('isolate', '?')}; {load_s}"
             f'{util_s}')
    return line1 + '\n' + line2


def plot_report(report: Dict[str, Any], path: str) -> None:
    """Write the PNG of ``report`` to ``path`` (see the module docstring)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    records = report['results']
    summary = report.get('summary') or summarize(report)
    paired = summary.get('paired', [])
    labels = list(dict.fromkeys(r['label'] for r in records if r['label'] != BACKBONE_ALONE))
    base = next((r for r in records if r['label'] == BACKBONE_ALONE and not r.get('error')), None)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    color = {lab: colors[i % len(colors)] for i, lab in enumerate(labels)}
    all_t = sorted({r['num_tasks'] for r in records if r['num_tasks'] is not None})

    rows = []  # (kind, mode)
    for mode in ('infer', 'train'):
        if any(_points(records, lab, mode) for lab in labels):
            rows.append(('timed', mode))
    has_flops = any(r.get('flops') for r in records)
    has_mem = any(_valid((r.get('memory') or {}).get('peak_mb')) for r in records)
    if has_flops or has_mem:
        rows.append(('cost', None))
    ncols = 2
    fig, axes = plt.subplots(len(rows), ncols, figsize=(13, 4.3 * len(rows) + 0.9), squeeze=False)
    used = set()
    for i, (kind, mode) in enumerate(rows):
        if kind == 'timed':
            _throughput(axes[i][0], records, labels, color, mode, base)
            _scaling(axes[i][1], paired, records, labels, color, mode)
            used |= {(i, 0), (i, 1)}
        else:
            col = 0
            if has_flops:
                _flops(axes[i][col], records, labels, color, base)
                used.add((i, col))
                col += 1
            if has_mem:
                _memory(axes[i][col], records, labels, color, base, report['settings'])
                used.add((i, col))
    for i in range(len(rows)):
        for j in range(ncols):
            ax = axes[i][j]
            if (i, j) not in used:
                ax.set_visible(False)  # no empty panels
                continue
            ax.set_xscale('log', base=2)
            if all_t:
                ax.set_xticks(all_t)
                ax.set_xticklabels([str(t) for t in all_t])
            ax.set_xlabel('number of tasks T')
            ax.grid(True, which='both', alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle('mtdense: cost versus the number of tasks', fontsize=12)
    fig.text(0.5, 0.005, caption(report), ha='center', va='bottom', fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _throughput(ax, records, labels, color, mode: str, base) -> None:
    for lab in labels:
        pts = _points(records, lab, mode)
        if not pts:
            continue
        ts = [r['num_tasks'] for r in pts]
        ys = [r['throughput_img_s'] for r in pts]
        lo = [r['throughput_img_s'] - r['throughput_img_s_p90_latency'] for r in pts]
        hi = [r['throughput_img_s_p10_latency'] - r['throughput_img_s'] for r in pts]
        ax.errorbar(ts, ys, yerr=[lo, hi], marker='o', color=color[lab], label=lab, capsize=3)
    if mode == 'infer' and base is not None and base.get('throughput_img_s'):
        ax.axhline(base['throughput_img_s'], color='black', linestyle='--', linewidth=1.2,
                   label='backbone alone (ceiling)')
    ax.set_yscale('log')
    what = 'Inference' if mode == 'infer' else 'Training step (fwd + bwd + AdamW)'
    ax.set_title(f'{what}: throughput (median, bars p10..p90)', fontsize=10)
    ax.set_ylabel('img/s (log)')


def _scaling(ax, paired, records, labels, color, mode: str) -> None:
    for lab in labels:
        pts = _points(records, lab, mode)
        if not pts:
            continue
        t0 = pts[0]['num_tasks']
        ts, ys, lo, hi = [t0], [1.0], [1.0], [1.0]
        for r in pts[1:]:
            e = find_ratio(paired, 't_scaling', mode, lab, r['num_tasks'], 'throughput')
            if e is None:
                continue
            ci = e.get('ci95') or [e['median'], e['median']]
            ts.append(r['num_tasks'])
            ys.append(e['median'])
            lo.append(ci[0])
            hi.append(ci[1])
        ax.plot(ts, ys, marker='o', color=color[lab], label=lab)
        ax.fill_between(ts, lo, hi, color=color[lab], alpha=0.18, linewidth=0)
    target = TARGETS['infer_t8'] if mode == 'infer' else 1.0 / TARGETS['train_t8']
    ax.axhline(1.0, color='black', linewidth=0.8)
    ax.axhline(target, color='gray', linestyle=':', linewidth=1.2,
               label=f'target at T=8: {target:.2f}')
    ax.set_ylim(bottom=0)
    ax.set_title(f"{'Inference' if mode == 'infer' else 'Training step'}: throughput(T) / "
                 'throughput(T0)\nmedian of same-round ratios, band: 95 % bootstrap CI',
                 fontsize=10)
    ax.set_ylabel('ratio to the smallest T')


def _flops(ax, records, labels, color, base) -> None:
    for lab in labels:
        pts = sorted({r['num_tasks']: r for r in records
                      if r['label'] == lab and r.get('flops')}.items())
        if not pts:
            continue
        ts = [t for t, _ in pts]
        ax.plot(ts, [r['flops']['backbone'] / 1e9 for _, r in pts], marker='o', color=color[lab],
                label=f'{lab} backbone+method')
        ax.plot(ts, [r['flops']['total'] / 1e9 for _, r in pts], marker='.', linestyle=':',
                color=color[lab], alpha=0.7)
    if base is not None and base.get('flops'):
        ax.axhline(base['flops']['total'] / 1e9, color='black', linestyle='--', linewidth=1.2,
                   label='backbone alone (floor)')
    ax.set_title('FLOPs per image (MACs, counted)\nbackbone+method solid, whole model dotted',
                 fontsize=10)
    ax.set_ylabel('GMACs / image')


def _memory(ax, records, labels, color, base, settings) -> None:
    for lab in labels:
        for mode, ls in (('infer', '-'), ('train', '--')):
            pts = [r for r in _points(records, lab, mode)
                   if _valid((r.get('memory') or {}).get('peak_mb'))]
            if pts:
                ax.plot([r['num_tasks'] for r in pts], [r['memory']['peak_mb'] for r in pts],
                        marker='o', linestyle=ls, color=color[lab], label=f'{lab} {mode}')
    peak: Optional[float] = (base.get('memory') or {}).get('peak_mb') if base else None
    if _valid(peak):
        ax.axhline(peak, color='black', linestyle='--', linewidth=1.2, label='backbone alone infer')
    scope = next(((r.get('memory') or {}).get('scope') for r in records
                  if (r.get('memory') or {}).get('scope')), None)
    what = 'CUDA max allocated' if settings['device'].startswith('cuda') else 'process peak RSS'
    ax.set_title(f'Peak memory ({what}, {scope or "?"})\nsolid infer, dashed train', fontsize=10)
    ax.set_ylabel('MB')
