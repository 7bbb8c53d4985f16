"""The standard comparison on a GPU: batch 1 and 32, fp32 and bf16 (benchmarks/gpu_preset.sh).

Every run is one interleaved profile (:func:`mtdense.analysis.profile`) of the six
standard Swin-T configs at T = 1 2 4 8 16, inference and training step, CUDA-
synchronised timing; peak memory with ``torch.cuda.max_memory_allocated`` in the timing
process (CUDA counts allocations per tensor, so each record also has ``own_peak_mb`` =
its resident tensors + its increase, the point's own peak with other models loaded).
Writes ``OUT/<run>/profile.{json,csv,png}`` + ``profile_ratios.csv`` + ``summary.md``,
``OUT/machine.json``, ``OUT/plan.json`` and ``OUT/commands.txt``.

``--dry-run`` builds the plan, checks every config and setting (with the device replaced
by 'cpu' when CUDA is absent) and writes the plan and machine info without measuring:
the way to test the preset on a machine without a GPU. Without ``--dry-run`` a missing
CUDA is an error (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from .settings import ProfileSettings, default_configs

__all__ = ['plan_runs', 'main']

REPO = Path(__file__).resolve().parents[2]
DTYPES = ('fp32', 'bf16')


def plan_runs(device: str, sizes: List[int], batches: List[int], dtypes: List[str],
              num_tasks: List[int], modes: List[str], warmup: int, repeats: int,
              max_seconds: Optional[float], configs=None) -> List[Dict[str, Any]]:
    """One entry per (size, batch, dtype): ``name`` and the ``ProfileSettings`` fields."""
    configs = default_configs(configs)
    runs = []
    for size in sizes:
        for batch in batches:
            for dtype in dtypes:
                if dtype not in DTYPES:
                    raise ValueError(f'gpu_preset: dtype must be one of {DTYPES}, got {dtype!r}')
                runs.append(OrderedDict(
                    name=f'{"both" if len(modes) > 1 else modes[0]}_{size}_b{batch}_{dtype}',
                    settings=OrderedDict(
                        configs=configs, num_tasks=list(num_tasks), img_size=size,
                        batch_size=batch, modes=list(modes), device=device, bf16=dtype == 'bf16',
                        warmup=warmup, repeats=repeats, max_seconds=max_seconds,
                        min_repeats=min(3, repeats), isolate='none', memory='shared',
                        flops=size == sizes[0] and batch == batches[0] and dtype == dtypes[0],
                        threads=None, schedule='interleaved', optimizer='fused')))
    return runs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda', help="'cuda' or 'cuda:N'")
    p.add_argument('--out', default=None,
                   help='results folder (default benchmarks/results/<date>_<gpu name>)')
    p.add_argument('--sizes', nargs='+', type=int, default=[448])
    p.add_argument('--batches', nargs='+', type=int, default=[1, 32])
    p.add_argument('--dtypes', nargs='+', default=list(DTYPES), choices=DTYPES)
    p.add_argument('--num-tasks', nargs='+', type=int, default=[1, 2, 4, 8, 16])
    p.add_argument('--modes', nargs='+', default=['infer', 'train'], choices=['infer', 'train'])
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--repeats', type=int, default=20, help='rounds per run')
    p.add_argument('--max-seconds', type=float, default=None,
                   help='stop a run once its timed total reaches this per point (average)')
    p.add_argument('--quick', action='store_true',
                   help='T = 1 4 16, 10 rounds, 3 warm-up iterations (a short device lease)')
    p.add_argument('--dry-run', action='store_true',
                   help='check and write the plan and machine info; measure nothing')
    return p.parse_args(argv)


def _slug(device: str) -> str:
    import re
    if torch.cuda.is_available() and device.startswith('cuda'):
        name = torch.cuda.get_device_name(torch.device(device).index or 0)
    else:
        name = 'no-cuda'
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')


def main(argv=None) -> int:
    args = parse_args(argv)
    import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
    from . import machine_info, profile
    from .tables import format_summary, write_csv, write_json, write_ratios_csv
    if args.quick:
        args.num_tasks, args.repeats, args.warmup = [1, 4, 16], 10, 3
    cuda = torch.cuda.is_available()
    if not cuda:
        msg = (f'gpu_preset: CUDA is not available on this machine (torch {torch.__version__}, '
               f'torch.version.cuda={torch.version.cuda}, cuda devices: 0)')
        if not args.dry_run:
            print(msg + '; nothing measured (use --dry-run to check the plan)', file=sys.stderr)
            return 2
        print(msg + '; dry run: the plan is checked with the device set to cpu', file=sys.stderr)
    out = Path(args.out or REPO / 'benchmarks' / 'results'
               / f'{time.strftime("%Y-%m-%d")}_{_slug(args.device)}')
    runs = plan_runs(args.device, args.sizes, args.batches, args.dtypes, args.num_tasks,
                     args.modes, args.warmup, args.repeats, args.max_seconds)
    for run in runs:  # every setting must be valid before a minute of device time is spent
        check = dict(run['settings'])
        if not cuda:
            check['device'] = 'cpu'
        ProfileSettings(**check).validate()
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info(args.device if cuda else 'cpu')
    info['cuda_available'] = cuda
    (out / 'machine.json').write_text(json.dumps(info, indent=1) + '\n')
    plan = OrderedDict(tool='benchmarks/gpu_preset.sh', dry_run=args.dry_run, cuda_available=cuda,
                       device=args.device, runs=runs)
    (out / 'plan.json').write_text(json.dumps(plan, indent=1) + '\n')
    log = out / 'commands.txt'
    for run in runs:
        line = f"{run['name']}: " + ', '.join(f'{k}={v}' for k, v in run['settings'].items()
                                              if k != 'configs')
        print(('[dry run] ' if args.dry_run else '') + line, file=sys.stderr)
        if args.dry_run:
            continue
        t0 = time.time()
        rc = 0
        try:
            report = profile(ProfileSettings(**run['settings']))
            folder = out / run['name']
            folder.mkdir(parents=True, exist_ok=True)
            write_json(report, str(folder / 'profile.json'))
            write_csv(report, str(folder / 'profile.csv'))
            write_ratios_csv(report, str(folder / 'profile_ratios.csv'))
            (folder / 'summary.md').write_text(format_summary(report) + '\n')
            from . import plot_report
            plot_report(report, str(folder / 'profile.png'))
        except Exception as exc:  # the next run may still fit (e.g. an out-of-memory batch)
            rc = 1
            print(f'gpu_preset: run {run["name"]} failed: {type(exc).__name__}: {exc}',
                  file=sys.stderr)
        finally:
            if cuda:
                torch.cuda.empty_cache()
        with open(log, 'a') as f:
            f.write(f"{line}\n# {run['name']}: {time.time() - t0:.0f} s, exit code {rc}\n")
    print(f'{"plan" if args.dry_run else "results"} in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
