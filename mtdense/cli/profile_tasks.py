"""Throughput, latency, memory, FLOPs and parameters versus the number of tasks:
``mtdense profile`` (``tools/profile_tasks.py`` is a thin wrapper).

Examples:
    # the standard comparison (VMT, VMT-Lite, per-task Adapter, per-task LoRA,
    # MTLoRA, multi-task full FT) at 448 px on a GPU, inference and training
    mtdense profile --num-tasks 1 2 4 8 16 --img-size 448 \\
        --batch-size 8 --mode both --device cuda --out work_dirs/profile_448

    # chosen configs, CPU, small size, quick
    mtdense profile configs/_base_/models/swin_t_mmseg_vmt.py \\
        configs/_base_/models/swin_t_mmseg_full_ft.py --num-tasks 1 4 \\
        --img-size 128 --repeats 5 --out /tmp/prof

Extra tasks are clones of the config's tasks (``semseg_2``, ``human_parts_2``, ...;
``--task-pool`` picks the tasks to clone). All points are timed in interleaved
rounds (a new shuffled order each round, after warm-up) so that load changes of a
shared machine cancel in the same-round ratios the report quotes (median and
95 % bootstrap interval); peak memory is measured afterwards with each point alone
in a fresh process. Writes ``DIR/profile.json`` (full report),
``DIR/profile.csv`` (one row per config x T x mode), ``DIR/profile_ratios.csv``
(every paired ratio) and ``DIR/profile.png`` (absolute and T-scaling panels,
FLOPs, memory; device, threads, allocator and load in the caption). FLOPs are
multiply-accumulates per image (mmengine/fvcore convention). docs/profiling.md has
the JSON schema, the conventions and measured tables.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from mmengine.config import DictAction



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
    p.add_argument('--schedule', choices=['interleaved', 'sequential'], default='interleaved',
                   help='interleaved (default): every point once per round, shuffled order; '
                        'sequential: each point back to back (load drift biases ratios)')
    p.add_argument('--warmup', type=int, default=2, help='untimed iterations per point and mode')
    p.add_argument('--repeats', type=int, default=10,
                   help='rounds (timed iterations per point = repeats x --round-iters)')
    p.add_argument('--round-iters', type=int, default=1,
                   help='timed iterations per point and round')
    p.add_argument('--max-seconds', type=float, default=None,
                   help='stop after the round in which the timed total reaches this many seconds '
                        'per point and mode on average (at least --min-repeats rounds)')
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
    p.add_argument('--optimizer', choices=['fused', 'foreach', 'loop'], default='fused',
                   help="AdamW implementation of the training step ('loop': one Python iteration "
                        'per parameter tensor, the torch default on CPU)')
    p.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    p.add_argument('--no-backbone-alone', action='store_true',
                   help='skip the backbone-alone reference point')
    p.add_argument('--no-breakdown', action='store_true',
                   help='do not time the backbone inside inference iterations')
    p.add_argument('--isolate', choices=['auto', 'none', 'config', 'point'], default='auto',
                   help="where the models live while timed: this process ('none'), a persistent "
                        "worker per config or per point; 'auto' (default): 'none', or 'config' "
                        'with --cpu-alloc cached')
    p.add_argument('--memory', choices=['isolated', 'shared', 'off'], default='isolated',
                   help="peak memory: 'isolated' (default; each point alone in a fresh process "
                        "after the rounds), 'shared' (in the timing process), 'off'")
    p.add_argument('--memory-iters', type=int, default=2)
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
    from mtdense.analysis import (ProfileSettings, config_label, default_configs, format_summary,
                                  plot_report, profile, write_csv, write_json, write_ratios_csv)
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
        configs = default_configs()
    settings = ProfileSettings(
        configs=configs, num_tasks=args.num_tasks, img_size=args.img_size,
        batch_size=args.batch_size,
        modes=['infer', 'train'] if args.mode == 'both' else [args.mode], device=args.device,
        num_classes=args.num_classes, task_pool=args.task_pool, schedule=args.schedule,
        warmup=args.warmup, repeats=args.repeats, round_iters=args.round_iters,
        max_seconds=args.max_seconds, min_repeats=args.min_repeats, isolate=args.isolate,
        memory=args.memory, memory_iters=args.memory_iters, flops=not args.no_flops,
        backbone_alone=not args.no_backbone_alone, breakdown=not args.no_breakdown,
        infer_forward=args.infer_forward, optimizer=args.optimizer,
        channels_last=args.channels_last, compile=args.compile, bf16=args.bf16,
        threads=args.threads, cpu_alloc=args.cpu_alloc, seed=args.seed,
        cfg_options=dict(args.cfg_options) if args.cfg_options else None)
    try:
        settings.validate()
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f'profile_tasks: {exc}')

    import contextlib
    # libraries print while models are built (mmseg: "No pre-trained weights ..."): keep
    # stdout for the summary tables
    with contextlib.redirect_stdout(sys.stderr):
        report = profile(settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, str(out / f'{args.name}.json'))
    write_csv(report, str(out / f'{args.name}.csv'))
    write_ratios_csv(report, str(out / f'{args.name}_ratios.csv'))
    if not args.no_plot:
        plot_report(report, str(out / f'{args.name}.png'))
    print(format_summary(report))
    print(f'wrote {out / args.name}.json, .csv, _ratios.csv' + ('' if args.no_plot else ', .png'))
    errors = [r for r in report['results'] if r.get('error')]
    if errors:
        print(f'profile_tasks: {len(errors)} measurement(s) failed (see "error" in the JSON)',
              file=sys.stderr)
        return 1
    return 0


def replot(json_path: str, out_dir: Optional[str]) -> int:
    """Rewrite CSV / PNG / summary of a saved report (e.g. after changing the plot)."""
    import json
    from mtdense.analysis import (format_summary, plot_report, summarize, write_csv,
                                  write_ratios_csv)
    path = Path(json_path)
    if not path.is_file():
        raise SystemExit(f'profile_tasks: --replot {json_path}: file not found')
    report = json.loads(path.read_text())
    if report.get('schema_version') not in (1, 2) or 'results' not in report:
        raise SystemExit(f'profile_tasks: {json_path} is not a profile report of schema version '
                         f'1 or 2 (schema_version={report.get("schema_version")!r})')
    report['summary'] = summarize(report)
    out = Path(out_dir) if out_dir else path.parent
    out.mkdir(parents=True, exist_ok=True)
    write_csv(report, str(out / f'{path.stem}.csv'))
    write_ratios_csv(report, str(out / f'{path.stem}_ratios.csv'))
    plot_report(report, str(out / f'{path.stem}.png'))
    print(format_summary(report))
    print(f'wrote {out / path.stem}.csv, _ratios.csv, .png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
