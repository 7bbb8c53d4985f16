"""Run a trained multi-task model on images and write colourised prediction panels.

    python tools/infer.py IMG|DIR --config CONFIG --checkpoint CKPT --out DIR
                          [--device cpu|cuda] [--save-raw] [--on-error stop|skip]
                          [--cfg-options k=v ...]

For every image (a file, or the images directly inside a folder, sorted by
name) it writes ``OUT/<name>.png``: the image followed by one colourised map
per task (class palette for semseg / human parts, saliency heatmap, normals as
RGB, depth colormap). With ``--save-raw`` it also writes ``OUT/<name>.npz``
holding the raw outputs at the image's size: seg tasks int64 (H, W) labels,
``saliency`` float32 (H, W) probability, ``normals`` float32 (H, W, 3) unit
vectors, ``depth`` float32 (H, W) metres. Images are read in their EXIF orientation
(a portrait phone photo is predicted upright).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
import time
from typing import List, Optional

import numpy as np
from mmengine.config import DictAction

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


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
                        help='also write <name>.npz with the raw task outputs')
    parser.add_argument('--on-error', choices=['stop', 'skip'], default='stop',
                        help='an image that cannot be read or predicted: stop there (default) '
                        'or skip it and go on; either way it is named, and the exit status is 1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. model.num_classes=21')
    return parser.parse_args(argv)


def list_images(path: str) -> List[str]:
    """``[path]`` for a file; the image files directly inside a folder, sorted."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'input {path!r} is neither an image file nor a folder')
    files = sorted(osp.join(path, f) for f in os.listdir(path)
                   if f.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(path, f)))
    if not files:
        raise FileNotFoundError(f'folder {path!r} holds no image files (looked for '
                                f'{", ".join(IMAGE_EXTENSIONS)})')
    stems = {}
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        if stem in stems:
            raise ValueError(f'{stems[stem]} and {f} would both be written as {stem}.png; '
                             'rename one of them')
        stems[stem] = f
    return files


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mtdense.apis import inference_model, init_model
    from mtdense.datasets.io import decode
    from mtdense.visualization.visualizer import MultiTaskVisualizer, write_rgb_png

    try:
        images = list_images(args.input)
    except (FileNotFoundError, ValueError) as e:
        print(f'infer: error: {e}', file=sys.stderr)
        return 1
    model = init_model(args.config, args.checkpoint, device=args.device,
                       cfg_options=args.cfg_options or None)
    vis = MultiTaskVisualizer(name=f'mtdense_infer_{os.getpid()}')
    vis.dataset_meta = model.dataset_meta
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    failed = []
    for k, path in enumerate(images, 1):
        try:
            preds = inference_model(model, path)
        except (OSError, ValueError) as e:  # DataFileError is a ValueError
            failed.append(path)
            print(f'[{k}/{len(images)}] {path}: error: {e}', file=sys.stderr)
            if args.on_error == 'stop':
                print(f'infer: stopped at {path} ({k - 1} image(s) written before it; '
                      '--on-error skip goes on past unreadable images)', file=sys.stderr)
                return 1
            continue
        img = decode('image_exif', path)  # as the model saw it (EXIF orientation applied)
        stem = osp.splitext(osp.basename(path))[0]
        panel_path = osp.join(args.out, f'{stem}.png')
        write_rgb_png(panel_path, vis.draw_predictions(img, preds))
        line = f'[{k}/{len(images)}] {path} -> {panel_path}'
        if args.save_raw:
            raw_path = osp.join(args.out, f'{stem}.npz')
            np.savez_compressed(raw_path, **preds)
            line += f', {raw_path}'
        print(line)
    seconds = time.perf_counter() - start
    done = len(images) - len(failed)
    print(f'{done} image(s) in {seconds:.2f} s ({done / max(seconds, 1e-9):.2f} '
          f'images/s on {args.device}); outputs in {args.out}')
    if failed:
        print(f'infer: {len(failed)} image(s) skipped: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
