"""One PNG summarising a task-scaling report (matplotlib, Agg backend)."""
from __future__ import annotations

from typing import Any, Dict, List

from .profiler import BACKBONE_ALONE


def _series(records: List[Dict[str, Any]], label: str, mode: str, key) -> tuple:
    pts = sorted(((r['num_tasks'], key(r)) for r in records
                  if r['label'] == label and r['mode'] == mode and not r.get('error')
                  and key(r) is not None), key=lambda p: p[0])
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_report(report: Dict[str, Any], path: str) -> None:
    """Throughput, FLOPs, training throughput and memory versus T, one line per config.

    The backbone alone (frozen, no adapter, no heads, one pass) is drawn as a
    dashed black line: the limit no multi-task model can beat.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    records = report['results']
    s = report['settings']
    labels = list(dict.fromkeys(r['label'] for r in records if r['label'] != BACKBONE_ALONE))
    base = next((r for r in records if r['label'] == BACKBONE_ALONE and not r.get('error')), None)
    modes = set(r['mode'] for r in records)
    all_t = sorted({r['num_tasks'] for r in records if r['num_tasks'] is not None})
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax_thr, ax_fl, ax_tr, ax_mem = axes.ravel()

    def thr(r):
        return r.get('throughput_img_s')

    for i, lab in enumerate(labels):
        c = colors[i % len(colors)]
        inf = sorted((r for r in records if r['label'] == lab and r['mode'] == 'infer'
                      and not r.get('error') and 'throughput_img_s' in r),
                     key=lambda r: r['num_tasks'])
        if inf:
            ts = [r['num_tasks'] for r in inf]
            ys = [r['throughput_img_s'] for r in inf]
            lo = [r['throughput_img_s'] - r['throughput_img_s_p90_latency'] for r in inf]
            hi = [r['throughput_img_s_p10_latency'] - r['throughput_img_s'] for r in inf]
            ax_thr.errorbar(ts, ys, yerr=[lo, hi], marker='o', color=c, label=lab, capsize=3)
        ts, ys = _series(records, lab, 'infer',
                         lambda r: r['flops']['backbone'] / 1e9 if r.get('flops') else None)
        for other in ('train', 'count'):
            if not ts:
                ts, ys = _series(records, lab, other,
                                 lambda r: r['flops']['backbone'] / 1e9 if r.get('flops') else None)
        if ts:
            ax_fl.plot(ts, ys, marker='o', color=c, label=f'{lab} backbone+adapter')
        ts2, ys2 = _series(records, lab, next(m for m in ('infer', 'train', 'count') if m in modes),
                           lambda r: r['flops']['total'] / 1e9 if r.get('flops') else None)
        if ts2:
            ax_fl.plot(ts2, ys2, marker='.', linestyle=':', color=c, alpha=0.7)
        ts, ys = _series(records, lab, 'train', thr)
        if ts:
            ax_tr.plot(ts, ys, marker='o', color=c, label=lab)
        for mode, ls in (('infer', '-'), ('train', '--')):
            ts, ys = _series(records, lab, mode,
                             lambda r: r['memory']['peak_mb'] if r.get('memory') else None)
            if ts:
                ax_mem.plot(ts, ys, marker='o', linestyle=ls, color=c,
                            label=f'{lab} {mode}')

    if base is not None:
        kw = dict(color='black', linestyle='--', linewidth=1.2)
        if base.get('throughput_img_s'):
            ax_thr.axhline(base['throughput_img_s'], label='backbone alone (limit)', **kw)
        if base.get('flops'):
            ax_fl.axhline(base['flops']['total'] / 1e9, label='backbone alone', **kw)
        if base.get('memory'):
            ax_mem.axhline(base['memory']['peak_mb'], label='backbone alone infer', **kw)

    for ax in axes.ravel():
        ax.set_xscale('log', base=2)
        if all_t:
            ax.set_xticks(all_t)
            ax.set_xticklabels([str(t) for t in all_t])
        ax.set_xlabel('number of tasks T')
        ax.grid(True, which='both', alpha=0.3)
    ax_thr.set_yscale('log')
    ax_thr.set_ylabel('inference throughput (img/s, log); bars: p90..p10 latency')
    ax_thr.set_title('Inference throughput')
    ax_fl.set_ylabel('GFLOPs / image (MACs)')
    ax_fl.set_title('FLOPs: backbone+adapter (solid), whole model (dotted)')
    ax_tr.set_yscale('log')
    ax_tr.set_ylabel('training throughput (img/s, log)')
    ax_tr.set_title('Training step (fwd + bwd + AdamW)' if 'train' in modes
                    else 'Training step (not measured)')
    ax_mem.set_ylabel('peak memory (MB)')
    ax_mem.set_title('Peak memory (' + (
        'CUDA allocated' if s['device'].startswith('cuda') else 'process RSS, absolute')
        + '); solid infer, dashed train')
    for ax in axes.ravel():
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7)
    m = report.get('machine', {})
    fig.suptitle(f"mtdense cost vs tasks: {s['img_size']}px, batch {s['batch_size']}, "
                 f"{s['device']} ({m.get('device_name', '')}), "
                 f"{'bf16' if s['bf16'] else 'fp32'}, torch {m.get('torch', '')}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
