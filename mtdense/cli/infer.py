"""Run a trained multi-task model on images and write colourised prediction panels.

    python tools/infer.py IMG|DIR --config CONFIG --checkpoint CKPT --out DIR
                          [--device cpu|cuda] [--save-raw] [--batch-size N]
                          [--on-error stop|skip]
                          [--cfg-options k=v ...]

For every image (a file, or the images directly inside a folder, sorted by
name) it writes ``OUT/<name>.png``: the image followed by one colourised map
per task (class palette for semseg / human parts, saliency heatmap, normals as
RGB, depth colormap). With ``--save-raw`` it also writes ``OUT/<name>.npz``
(compressed) holding the raw outputs at the image's size: seg tasks (H, W) labels
as uint8, ``saliency`` (H, W) probability, ``normals`` (H, W, 3) unit vectors and
``depth`` (H, W) metres as float16. Runs on ``mtdense.apis.MTDenseInferencer``. Images are read in their EXIF orientation
(a portrait phone photo is predicted upright).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from mmengine.config import DictAction

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Multi-task inference on an image or a folder of images',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('input', metavar='IMG|DIR', help='an image file or a folder of images')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint file (loaded with torch.load(weights_only=True))')
    parser.add_argument('--out', required=True, help='output folder for panels (and .npz)')
    parser.add_argument('--device', default='cpu', help='torch device (default: %(default)s)')
    parser.add_argument('--save-raw', action='store_true',
                        help='also write <name>.npz (compressed) with the raw task outputs: '
                        'labels uint8, maps float16')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward pass (images of one size share a batch)')
    parser.add_argument('--on-error', choices=['stop', 'skip'], default='stop',
                        help='an image that cannot be read or predicted: stop there (default) '
                        'or skip it and go on; either way it is named, and the exit status is 1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. model.num_classes=21')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mtdense.apis import MTDenseInferencer
    from mtdense.apis.inferencer import list_inputs

    try:
        items = list_inputs(args.input)
    except (FileNotFoundError, TypeError, ValueError) as e:
        print(f'infer: error: {e}', file=sys.stderr)
        return 1
    inferencer = MTDenseInferencer(args.config, args.checkpoint, device=args.device,
                                   cfg_options=args.cfg_options or None)
    start = time.perf_counter()
    failed, done = [], 0
    stream = inferencer.stream(args.input, batch_size=args.batch_size, out_dir=args.out,
                               save_panels=True, save_raw=args.save_raw,
                               on_error='raise' if args.on_error == 'stop' else 'skip')
    try:
        for k, result in enumerate(stream, 1):
            where = result['path'] or result['name']
            if 'error' in result:
                failed.append(where)
                print(f'[{k}/{len(items)}] {where}: error: {result["error"]}', file=sys.stderr)
                continue
            done += 1
            print(f'[{k}/{len(items)}] {where} -> {", ".join(result["files"])}')
    except (OSError, ValueError) as e:  # --on-error stop: named by the message
        print(f'infer: error: {e}\ninfer: stopped ({done} image(s) written before it; '
              '--on-error skip goes on past unreadable images)', file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    print(f'{done} image(s) in {seconds:.2f} s ({done / max(seconds, 1e-9):.2f} '
          f'images/s on {args.device}, batch {args.batch_size}); outputs in {args.out}')
    if failed:
        print(f'infer: {len(failed)} image(s) skipped: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0
