"""Check every file of a dataset split before a long run; list every defect with its file.

    python tools/check_dataset.py CONFIG [--split train val] [--level full|sample]
                                  [--workers N] [--report report.json] [--data-root DIR]
                                  [--cfg-options k=v ...]

``--level full`` (default) decodes every sample as training would read it (in ``--workers``
processes); ``sample`` checks every file's header (size, format, shape, dtype) against its
image and decodes a few samples. Defects (unreadable, corrupt, mis-sized, out-of-range or
NaN files) and warnings (depth that looks like millimetres, normals that look like colours)
are printed and written to the report. Exit status 1 if a split has a defect.
Training runs the ``sample`` level itself when a dataset is built (``data_check``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument('config', help='config with train/val/test dataloaders')
    p.add_argument('--split', nargs='+', default=None, metavar='SPLIT',
                   help='splits to check (default: those of the train and test dataloaders)')
    p.add_argument('--level', choices=['full', 'sample'], default='full')
    p.add_argument('--workers', type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   help='processes decoding in parallel (default: the CPU count, up to 8)')
    p.add_argument('--report', help='write the report (JSON) here')
    p.add_argument('--data-root', help="dataset root (overrides the config's)")
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f'--workers must be >= 1, got {args.workers}')
    return args


def _dataset_cfgs(cfg: Config, splits: Optional[List[str]]) -> List[dict]:
    """One dataset config per split to check (from the dataloaders' datasets)."""
    base = None
    found = {}
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = (cfg.get(key) or {}).get('dataset')
        if isinstance(ds, dict) and 'type' in ds:
            base = base or ds
            found.setdefault(ds.get('split', 'train'), ds)
    if base is None:
        raise SystemExit(f'check_dataset: {cfg.filename} has no dataloader dataset')
    if splits is None:
        return [copy.deepcopy(d) for d in found.values()]
    return [dict(copy.deepcopy(found.get(s, base)), split=s) for s in splits]


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mtdense.datasets.checks import check_dataset
    from mtdense.engine.config_tools import set_data_root
    from mtdense.registry import DATASETS
    from mtdense.utils import register_all_modules
    register_all_modules()
    from mtdense.utils.config_names import resolve_config
    try:
        cfg = Config.fromfile(resolve_config(args.config))
    except FileNotFoundError as e:
        print(f'check_dataset: error: {e}', file=sys.stderr)
        return 2
    cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        set_data_root(cfg, args.data_root)
    reports, failed = [], False
    for ds_cfg in _dataset_cfgs(cfg, args.split):
        # build the list (every file must exist), check separately with progress
        ds_cfg.update(pipeline=[], data_check='off')
        try:
            dataset = DATASETS.build(ds_cfg)
        except Exception as e:  # noqa: BLE001 - a missing file / split is a finding, not a crash
            print(f'{ds_cfg["type"]} split {ds_cfg.get("split")!r}: cannot be listed: {e}')
            reports.append(dict(dataset=ds_cfg['type'], split=ds_cfg.get('split'),
                                error=str(e)))
            failed = True
            continue
        print(f'checking {ds_cfg["type"]} split {dataset.split!r} ({len(dataset)} samples, '
              f'level {args.level}, {args.workers} worker(s))')
        report = check_dataset(dataset, args.level, args.workers, progress=True)
        print(report.summary(max_listed=50))
        reports.append(report.to_dict())
        failed |= bool(report.defects)
    if args.report:
        os.makedirs(osp.dirname(osp.abspath(args.report)), exist_ok=True)
        with open(args.report, 'w') as f:
            json.dump(dict(config=args.config, level=args.level, splits=reports), f, indent=2)
        print(f'report written to {args.report}')
    return 1 if failed else 0
