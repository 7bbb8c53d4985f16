"""Throughput, latency, memory, FLOPs and parameters versus the number of tasks.

Examples:
    # the standard comparison (VMT, VMT-Lite, per-task Adapter, per-task LoRA,
    # MTLoRA, multi-task full FT) at 448 px on a GPU, inference and training
    python tools/profile_tasks.py --num-tasks 1 2 4 8 16 --img-size 448 \\
        --batch-size 8 --mode both --device cuda --out work_dirs/profile_448

    # chosen configs, CPU, small size, quick
    python tools/profile_tasks.py configs/_base_/models/swin_t_mmseg_vmt.py \\
        configs/_base_/models/swin_t_mmseg_full_ft.py --num-tasks 1 4 \\
        --img-size 128 --repeats 5 --out /tmp/prof

Extra tasks are clones of the config's tasks (``semseg_2``, ``human_parts_2``, ...;
``--task-pool`` picks the tasks to clone). Writes ``DIR/profile.json`` (full
report), ``DIR/profile.csv`` (one row per config x T x mode) and
``DIR/profile.png`` (throughput and FLOPs versus T for every config, with the
backbone alone as the limit). FLOPs are multiply-accumulates per image
(mmengine/fvcore convention). See the README section "Profiling cost versus
the number of tasks" for the JSON schema and the memory conventions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from mmengine.config import DictAction

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='*', metavar='CONFIG',
                   help='model configs (default: the six standard Swin-T comparisons)')
    p.add_argument('--labels', nargs='+', default=None,
                   help='names of the configs in the outputs (default: file stems)')
    p.add_argument('--num-tasks', nargs='+', type=int, default=[1, 2, 4, 8, 16], metavar='T')
    p.add_argument('--img-size', type=int, default=448)
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--mode', choices=['infer', 'train', 'both', 'count'], default='infer',
                   help='inference forward, training step (AdamW fwd+bwd+step), both, or '
                        'count (FLOPs and parameters only, nothing timed)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]'")
    p.add_argument('--num-classes', type=int, default=21,
                   help='semantic classes when the config leaves model.num_classes unset')
    p.add_argument('--task-pool', nargs='+', default=None,
                   help="tasks cloned to reach T (default: the config's model.tasks)")
    p.add_argument('--warmup', type=int, default=2, help='untimed iterations per measurement')
    p.add_argument('--repeats', type=int, default=10, help='timed iterations per measurement')
    p.add_argument('--max-seconds', type=float, default=None,
                   help='stop timing a measurement after this many timed seconds '
                        '(at least --min-repeats iterations)')
    p.add_argument('--min-repeats', type=int, default=3)
    p.add_argument('--infer-forward', choices=['tensor', 'predict'], default='tensor',
                   help="'tensor': backbone + heads + upsampling; 'predict': full test_step "
                        '(preprocessing and prediction post-processing)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true', help='torch.compile the model forward')
    p.add_argument('--bf16', action='store_true', help='bfloat16 autocast')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    p.add_argument('--cpu-alloc', choices=['system', 'cached'], default='system',
                   help="'cached': the workers' glibc malloc keeps freed large blocks (no page "
                        'faults on every big activation; what jemalloc/tcmalloc give)')
    p.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    p.add_argument('--no-backbone-alone', action='store_true',
                   help='skip the backbone-alone reference point')
    p.add_argument('--no-breakdown', action='store_true',
                   help='do not time the backbone inside inference iterations')
    p.add_argument('--isolate', choices=['config', 'point', 'none'], default='config',
                   help='fresh process per config (default), per (config, T), or none')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override keys of every config, e.g. model.heads.channels=128')
    p.add_argument('--out', default=None, help='output directory (required unless --replot)')
    p.add_argument('--replot', default=None, metavar='JSON',
                   help='measure nothing: rewrite the CSV, PNG and summary of an earlier '
                        'profile JSON (next to it, or in --out)')
    p.add_argument('--name', default='profile', help='stem of the output files')
    p.add_argument('--no-plot', action='store_true')
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
    from mtdense.analysis import (DEFAULT_CONFIGS, ProfileSettings, config_label, plot_report,
                                  profile, write_csv, write_json)
    if args.replot:
        return replot(args.replot, args.out)
    if args.out is None:
        raise SystemExit('profile_tasks: --out DIR is required (unless --replot JSON)')

    if args.configs:
        labels = args.labels or [config_label(c) for c in args.configs]
        if len(labels) != len(args.configs):
            raise SystemExit(f'profile_tasks: {len(args.configs)} configs but {len(labels)} labels')
        configs = list(zip(labels, args.configs))
    else:
        if args.labels:
            raise SystemExit('profile_tasks: --labels needs explicit CONFIG arguments')
        configs = [(lab, str(REPO / path)) for lab, path in DEFAULT_CONFIGS]
    settings = ProfileSettings(
        configs=configs, num_tasks=args.num_tasks, img_size=args.img_size,
        batch_size=args.batch_size,
        modes=['infer', 'train'] if args.mode == 'both' else [args.mode], device=args.device,
        num_classes=args.num_classes, task_pool=args.task_pool, warmup=args.warmup,
        repeats=args.repeats, max_seconds=args.max_seconds, min_repeats=args.min_repeats,
        flops=not args.no_flops, backbone_alone=not args.no_backbone_alone,
        breakdown=not args.no_breakdown, infer_forward=args.infer_forward,
        channels_last=args.channels_last, compile=args.compile, bf16=args.bf16,
        threads=args.threads, cpu_alloc=args.cpu_alloc, isolate=args.isolate, seed=args.seed,
        cfg_options=dict(args.cfg_options) if args.cfg_options else None)
    try:
        settings.validate()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f'profile_tasks: {exc}')

    report = profile(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, str(out / f'{args.name}.json'))
    write_csv(report, str(out / f'{args.name}.csv'))
    if not args.no_plot:
        plot_report(report, str(out / f'{args.name}.png'))
    print(format_summary(report))
    print(f'wrote {out / args.name}.json, .csv' + ('' if args.no_plot else ', .png'))
    errors = [r for r in report['results'] if r.get('error')]
    if errors:
        print(f'profile_tasks: {len(errors)} measurement(s) failed (see "error" in the JSON)',
              file=sys.stderr)
        return 1
    return 0


def replot(json_path: str, out_dir: Optional[str]) -> int:
    """Rewrite CSV / PNG / summary of a saved report (e.g. after changing the plot)."""
    import json
    from mtdense.analysis import SCHEMA_VERSION, plot_report, summarize, write_csv
    path = Path(json_path)
    if not path.is_file():
        raise SystemExit(f'profile_tasks: --replot {json_path}: file not found')
    report = json.loads(path.read_text())
    if report.get('schema_version') != SCHEMA_VERSION or 'results' not in report:
        raise SystemExit(f'profile_tasks: {json_path} is not a profile report of schema version '
                         f'{SCHEMA_VERSION} (schema_version={report.get("schema_version")!r})')
    report['summary'] = summarize(report['results'])
    out = Path(out_dir) if out_dir else path.parent
    out.mkdir(parents=True, exist_ok=True)
    write_csv(report, str(out / f'{path.stem}.csv'))
    plot_report(report, str(out / f'{path.stem}.png'))
    print(format_summary(report))
    print(f'wrote {out / path.stem}.csv, .png')
    return 0


def format_summary(report) -> str:
    """Markdown table of the results plus the cost targets."""
    lines = ['| config | T | mode | img/s | median ms [p10, p90] | backbone ms | peak MB (+incr) '
             '| GFLOPs bb / heads | trainable params |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        t = r['num_tasks'] if r['num_tasks'] is not None else '-'
        if r.get('error'):
            lines.append(f"| {r['label']} | {t} | {r['mode']} | error: {r['error']} | | | | | |")
            continue
        if 'latency' not in r:  # count mode
            fl = r.get('flops')
            lines.append(f"| {r['label']} | {t} | {r['mode']} | - | - | - | - | "
                         + (f"{fl['backbone'] / 1e9:.3f} / {fl['heads'] / 1e9:.3f}" if fl else '-')
                         + f" | {r['params']['trainable'] if r.get('params') else '-'} |")
            continue
        lat, mem, fl = r['latency'], r['memory'], r.get('flops')
        bb = r.get('backbone_latency')
        cells = [r['label'], t, r['mode'], f"{r['throughput_img_s']:.2f}",
                 f"{lat['median_ms']:.1f} [{lat['p10_ms']:.1f}, {lat['p90_ms']:.1f}]",
                 f"{bb['median_ms']:.1f}" if bb else '-',
                 f"{mem['peak_mb']:.0f} (+{mem['increase_mb']:.0f})",
                 f"{fl['backbone'] / 1e9:.3f} / {fl['heads'] / 1e9:.3f}" if fl else '-',
                 r['params']['trainable'] if r.get('params') else '-']
        lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
    lines += ['', '| target | config | value | status |', '|---|---|---|---|']
    for tg in report['summary']['targets']:
        v = tg['value']
        if isinstance(v, dict):
            v = ', '.join(f'T={k}: {x:.3f}' for k, x in v.items())
        elif isinstance(v, float):
            v = f'{v:.4f}'
        lines.append(f"| {tg['target']} | {tg['label']} | {v} | {tg['status']} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
