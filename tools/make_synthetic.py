"""Generate the procedural synthetic multi-task dataset.

Example:
    python tools/make_synthetic.py --num 2000 --size 128 128 --seed 0 --out data/synthetic

Sample i depends only on (seed, i), so the result does not depend on --workers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from mtdense.datasets.synthetic import SyntheticDatasetWriter, SyntheticSceneGenerator


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num', type=int, required=True, help='number of samples (> 0)')
    parser.add_argument('--size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'),
                        help='image height and width in pixels (default: 128 128)')
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
    parser.add_argument('--quiet', action='store_true', help='no progress lines')
    args = parser.parse_args(argv)
    # Argument errors are reported by argparse (exit status 2) before anything is written.
    if args.num <= 0:
        parser.error(f'--num must be > 0, got {args.num}')
    min_size = SyntheticSceneGenerator.MIN_SIZE
    if min(args.size) < min_size:
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


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
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


if __name__ == '__main__':
    sys.exit(main())
