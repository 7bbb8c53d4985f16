"""Train and evaluate every PETL method on the same upstream backbone; tables and plot.

    mtdense benchmark --preset quick   # (or python tools/benchmark_methods.py) <= 15 min on 2 cores
    mtdense benchmark --preset full    # <= 90 min on 2 cores
        [--out DIR] [--work-dir DIR] [--rows KEY ...] [--workers N] [--keep-checkpoints]
        [--iters N] [--lrs LR ...] [--backbone-lr-mults M ...] [--seeds S ...]
    mtdense benchmark --list                       # rows and their methods
    mtdense benchmark --print-config swin_mtlora   # a run's full config
    mtdense benchmark --preset full --estimate-from DIR  # duration estimate

Rows are the configs in configs/benchmark/ (Swin: single-task FT, multi-task FT,
decoder-only, BitFit, per-task Adapter, per-task LoRA, MTLoRA, VMT, VMT-Lite on the
demo's upstream Swin; MobileNetV2 with ImageNet weights: single-task FT, multi-task FT,
decoder-only, Modulation Adapters, depthwise sharing). Each row: the lr grid on the
validation split with the tuning seed, then every seed at the chosen lr, evaluated on
a held-out test rendering with another seed. Re-running the same command resumes:
finished runs are not redone. Outputs in --out: benchmark.json (schema in
docs/benchmarks.md), benchmark.csv, benchmark.md, delta_m_vs_params.png, plus every
job's result JSON (runs/, profile/, upstream.json) and benchmark.log.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import List, Optional


def _benchmark_configs() -> str:
    """configs/benchmark/ of this checkout or of the installed package."""
    from mtdense.utils.config_names import configs_root
    root = configs_root()
    return os.path.join(root, 'benchmark') if root else os.path.join('configs', 'benchmark')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mtdense.benchmark.presets import PRESETS
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--preset', choices=sorted(PRESETS), default='quick')
    p.add_argument('--out', default=None,
                   help='results folder (default: work_dirs/benchmark_methods/<preset>); '
                        're-use it to resume')
    p.add_argument('--work-dir', default=None,
                   help='data, weights, checkpoints, logs (default: <out>/work)')
    p.add_argument('--config-dir', default=None,
                   help='row configs (default: the shipped configs/benchmark/)')
    p.add_argument('--rows', nargs='+', default=None, metavar='KEY',
                   help='only these rows (keys as in --list; each family needs its baseline)')
    p.add_argument('--iters', type=int, default=None, help='override the preset\'s iterations')
    p.add_argument('--lrs', type=float, nargs='+', default=None, help='override the lr grid')
    p.add_argument('--backbone-lr-mults', type=float, nargs='+', default=None,
                   help='override the second grid dimension: the backbone side\'s lr as '
                        'multiples of the grid\'s lr, which the heads keep (must include 1)')
    p.add_argument('--seeds', type=int, nargs='+', default=None, help='override the seeds')
    p.add_argument('--workers', type=int, default=None, help='parallel worker processes')
    p.add_argument('--reuse-from', metavar='DIR', default=None,
                   help='another benchmark folder: copy its finished jobs that this run would '
                        'compute identically (same spec hash; needs the same --work-dir)')
    p.add_argument('--keep-checkpoints', action='store_true',
                   help='keep every run\'s checkpoint (default: deleted once not needed)')
    p.add_argument('--list', action='store_true', help='list the rows and exit')
    p.add_argument('--print-config', metavar='ROW', default=None,
                   help='print the config of ROW\'s first run (lr grid[0], seeds[0]) and exit')
    p.add_argument('--estimate-from', metavar='DIR', default=None,
                   help='estimate this preset\'s duration from the per-run times of a finished '
                        'benchmark in DIR (its benchmark.json) and exit')
    return p.parse_args(argv)


def _terminate(signum, frame) -> None:
    # SIGTERM (kill, a job scheduler) ends the run like Ctrl-C: the pool stops its workers;
    # finished jobs keep their results and the same command resumes
    raise KeyboardInterrupt(f'signal {signum}')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.config_dir is None:
        args.config_dir = _benchmark_configs()
    signal.signal(signal.SIGTERM, _terminate)
    import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
    from mtdense.benchmark.compose import discover_preset_rows, method_spec
    from mtdense.benchmark.presets import get_preset
    overrides = dict(iters=args.iters, workers=args.workers,
                     lrs=tuple(args.lrs) if args.lrs else None,
                     backbone_lr_mults=tuple(args.backbone_lr_mults)
                     if args.backbone_lr_mults else None,
                     seeds=tuple(args.seeds) if args.seeds else None,
                     rows=tuple(args.rows) if args.rows else None)
    preset = get_preset(args.preset, {k: v for k, v in overrides.items() if v is not None})
    if args.list:
        for row in discover_preset_rows(args.config_dir, preset.row_dirs).values():
            mult = '' if row.backbone_lr_mult == 1.0 else \
                f' backbone_lr_mult={row.backbone_lr_mult:g}'
            print(f'{row.key:26s} {row.family:5s} {row.role:8s} {row.label:22s} '
                  f'{json.dumps(method_spec(row))}{mult}')
        return 0
    if args.estimate_from:
        from mtdense.benchmark.estimate import estimate, format_estimate
        path = os.path.join(args.estimate_from, 'benchmark.json')
        if not os.path.isfile(path):
            raise SystemExit(f'benchmark_methods: {path} not found (--estimate-from needs a '
                             'finished benchmark folder)')
        with open(path) as f:
            measured = json.load(f)
        print(format_estimate(estimate(measured, preset, folder=args.estimate_from)))
        return 0
    out = args.out or os.path.join('work_dirs', 'benchmark_methods', preset.name)
    work = args.work_dir or os.path.join(out, 'work')
    from mtdense.benchmark.plan import Plan
    if args.print_config:
        if args.print_config not in preset.rows:
            raise SystemExit(f'benchmark_methods: no row {args.print_config!r} in preset '
                             f'{preset.name!r} (rows: {", ".join(preset.rows)})')
        plan = Plan(preset, out, work, args.config_dir)
        row = next(r for r in plan.rows if r.key == args.print_config)
        print(plan.run_config(row, preset.lrs[0], preset.seeds[0]).pretty_text)
        return 0
    from mtdense.benchmark.run import run_benchmark
    try:
        results = run_benchmark(preset, out, work, args.config_dir,
                                keep_checkpoints=args.keep_checkpoints,
                                reuse_from=args.reuse_from,
                                argv=['mtdense', 'benchmark'] + list(
                                    sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as exc:
        print(f'benchmark_methods: interrupted ({exc or "Ctrl-C"}); the same command resumes',
              file=sys.stderr)
        return 130
    print(open(os.path.join(out, 'benchmark.md')).read())
    return 0 if not results['jobs']['not_done'] else 1


if __name__ == '__main__':
    sys.exit(main())
