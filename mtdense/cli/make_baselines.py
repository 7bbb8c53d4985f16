"""Turn single-task runs into the baselines JSON that Δm reads (with provenance).

    python tools/make_baselines.py RUN_METRICS.json [RUN_METRICS.json ...] --out FILE
        [--dataset TEXT] [--backbone TEXT] [--method TEXT] [--notes TEXT]

Each RUN_METRICS.json is what ``tools/test.py --metrics-out`` wrote for one single-task run
(e.g. the configs/single_task_ft/*_<task>.py runs); every task's metrics come from
the run that evaluated it. The file records each number's run (metrics file, config,
checkpoint) and the evaluation protocol, so MultiTaskMetric computes Δm only against
runs evaluated the same way:

    python tools/test.py CONFIG CKPT --baselines FILE    # prints the Δm table
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config

from mtdense.evaluation import baselines_from_runs


def _describe(run_data: dict, key: str) -> Optional[str]:
    """Dataset or backbone description from a run's config, if it can be read."""
    path = run_data.get('config')
    if not path or not osp.isfile(path):
        return None
    cfg = Config.fromfile(path)
    if key == 'dataset':
        ds = cfg.test_dataloader.dataset
        return f'{ds.type} at {ds.data_root}, split {ds.get("split", "?")}'
    bb = cfg.model.backbone
    host = bb.get('backbone', {})
    return f'{host.get("type", bb.get("type"))} from {bb.get("checkpoint") or "random init"}'


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('runs', nargs='+', help='metrics JSON of each run (tools/test.py --metrics-out)')
    p.add_argument('--out', required=True, help='baselines JSON to write')
    p.add_argument('--dataset', help='dataset description (default: from the first config)')
    p.add_argument('--backbone', help='backbone description (default: from the first config)')
    p.add_argument('--method', default='single-task full fine-tuning (one run per task)')
    p.add_argument('--notes', help='anything needed to read the numbers correctly')
    args = p.parse_args(argv)
    runs = []
    for path in args.runs:
        if not osp.isfile(path):
            print(f'make_baselines: error: metrics file not found: {path}', file=sys.stderr)
            return 1
        with open(path) as f:
            try:
                runs.append(dict(path=path, data=json.load(f)))
            except json.JSONDecodeError as e:
                print(f'make_baselines: error: {path}: not valid JSON ({e})', file=sys.stderr)
                return 1
    dataset = args.dataset or _describe(runs[0]['data'], 'dataset')
    backbone = args.backbone or _describe(runs[0]['data'], 'backbone')
    if not dataset or not backbone:
        print('make_baselines: error: --dataset and --backbone are needed (the first run\'s '
              'config cannot be read to describe them)', file=sys.stderr)
        return 1
    try:
        obj = baselines_from_runs(runs, dataset=dataset, backbone=backbone, method=args.method,
                                  notes=args.notes)
    except (ValueError, KeyError) as e:
        print(f'make_baselines: error: {e}', file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(obj, f, indent=2)
    tasks = ', '.join(f'{t} ({", ".join(f"{k} {v:.2f}" for k, v in m.items())})'
                      for t, m in obj['metrics'].items())
    print(f'wrote {args.out}: {tasks}')
    return 0
