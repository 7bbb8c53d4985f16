"""Generate the procedural synthetic multi-task dataset.

Examples:
    python tools/make_synthetic.py --num 2000 --size 128 128 --seed 0 --out data/synthetic
    # the same kind of scenes in the exact layout (and image sizes) of a real release:
    python tools/make_synthetic.py --layout pascal-mt --num 12 --out data/fixture_PASCAL_MT
    python tools/make_synthetic.py --layout nyud-mt --num 8 --out data/fixture_NYUD_MT

Sample i depends only on (seed, i) (and its size), so the result does not depend on
--workers. The release layouts default to the releases' sizes (PASCAL's varied sizes,
NYUD's 480 x 640); --size fixes one size.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from mtdense.datasets.synthetic import (RELEASE_LAYOUTS, ReleaseLayoutWriter,
                                        SyntheticDatasetWriter, SyntheticSceneGenerator)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num', type=int, required=True, help='number of samples (> 0)')
    parser.add_argument('--layout', choices=('mtdense',) + RELEASE_LAYOUTS, default='mtdense',
                        help="on-disk layout: mtdense's own (default; SyntheticMTDataset), or "
                             'the PASCAL_MT / NYUD_MT release layout (PascalContextMTDataset / '
                             'NYUDv2MTDataset)')
    parser.add_argument('--size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                        help='image height and width in pixels (default: 128 128; release '
                             'layouts: the release sizes)')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed (>= 0, default: 0)')
    parser.add_argument('--out', default='data/synthetic',
                        help='output directory (default: data/synthetic)')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='share of samples in gt_sets/val.txt, in [0, 1) (default: 0.2)')
    parser.add_argument('--workers', type=int, default=1,
                        help='worker processes (default: 1); does not change the output')
    parser.add_argument('--scene-config', default=None, metavar='JSON',
                        help='JSON file with SceneConfig fields overriding the defaults')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the dataset folders of a non-empty --out made with '
                             'other settings')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    # Argument errors are reported by argparse (exit status 2) before anything is written.
    if args.num <= 0:
        parser.error(f'--num must be > 0, got {args.num}')
    min_size = SyntheticSceneGenerator.MIN_SIZE
    if args.layout != 'mtdense':
        if args.num < 2:
            parser.error(f'--layout {args.layout} needs --num >= 2 (a train and a val image)')
        if args.scene_config is not None:
            parser.error(f'--scene-config is not supported with --layout {args.layout}')
    elif args.size is None:
        args.size = [128, 128]
    if args.size is not None and min(args.size) < min_size:
        parser.error(f'--size H W must both be >= {min_size}, got {args.size[0]} {args.size[1]}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    if not 0.0 <= args.val_fraction < 1.0:
        parser.error(f'--val-fraction must be in [0, 1), got {args.val_fraction}')
    if round(args.num * args.val_fraction) >= args.num:
        parser.error(f'--val-fraction {args.val_fraction} of --num {args.num} leaves no '
                     f'training sample')
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    if args.scene_config is not None and not os.path.isfile(args.scene_config):
        parser.error(f'--scene-config {args.scene_config!r} is not a file')
    return args


def _release_layout(args: argparse.Namespace) -> int:
    sizes = [tuple(args.size)] if args.size is not None else None
    try:
        result = ReleaseLayoutWriter(args.out, args.layout, args.num, seed=args.seed,
                                     sizes=sizes, val_fraction=args.val_fraction, workers=args.workers,
                                     overwrite=args.overwrite).run(progress=not args.quiet)
    except (ValueError, FileExistsError) as e:
        print(f'make_synthetic: error: {e}', file=sys.stderr)
        return 1
    shapes = sorted({tuple(s) for s in result['sizes']})
    print(f'wrote {args.num} synthetic scenes in the {args.layout} release layout to {args.out} '
          f'(train {result["train"]}, val {result["val"]}; sizes (h, w) {shapes})')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.layout != 'mtdense':
        return _release_layout(args)
    scene_cfg = None
    if args.scene_config is not None:
        with open(args.scene_config) as f:
            try:
                scene_cfg = json.load(f)
            except json.JSONDecodeError as e:
                raise SystemExit(f'--scene-config {args.scene_config!r}: invalid JSON ({e})')
    height, width = args.size
    try:
        writer = SyntheticDatasetWriter(args.out, args.num, height, width, seed=args.seed,
                                        val_fraction=args.val_fraction, workers=args.workers,
                                        scene_cfg=scene_cfg, overwrite=args.overwrite)
        result = writer.run(progress=not args.quiet)
    except (ValueError, KeyError, FileExistsError) as e:
        print(f'make_synthetic: error: {e}', file=sys.stderr)
        return 1
    counts = result['counts']
    print(f'wrote {args.num} samples of {height}x{width} to {args.out} '
          f'(train {counts["train"]}, val {counts["val"]}, with a person {counts["with_person"]})')
    print(f'{result["images_per_s"]:.1f} images/s ({result["seconds"]:.2f} s, '
          f'{args.workers} worker(s), rendering + writing)')
    return 0
