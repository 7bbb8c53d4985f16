"""Write one PNG panel per sample: the image next to every task map, colourised.

Examples::

    python tools/browse_dataset.py configs/_base_/datasets/synthetic.py --out work_dirs/browse
    python tools/browse_dataset.py CONFIG --split val --num 4 --no-pipeline \\
        --data-root data/synthetic

The dataset is built from ``cfg.train_dataloader.dataset`` (``--split train``) or
``cfg.val_dataloader.dataset`` (``--split val``) and run through its pipeline, so
the panels show exactly what the model is fed (augmentations, crops, padding).
``--no-pipeline`` replaces the pipeline by the two loading transforms to show the
files as stored. Invalid pixels are black (label 255, zero normals, zero depth).
"""
from __future__ import annotations

import argparse
import copy
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
from mmengine.config import Config, DictAction

LOAD_ONLY = [dict(type='LoadMultiTaskImage'), dict(type='LoadMultiTaskAnnotations')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Render dataset samples (image + every task map) as PNG panels.')
    parser.add_argument('config', help='mmengine config with train_dataloader / val_dataloader')
    parser.add_argument('--out', default='work_dirs/browse_dataset',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--num', type=int, default=8,
                        help='number of samples, from the first (default: %(default)s)')
    parser.add_argument('--split', choices=['train', 'val'], default='train',
                        help='which dataloader\'s dataset to browse (default: %(default)s)')
    parser.add_argument('--no-pipeline', action='store_true',
                        help='only load image and annotations (no augmentation / packing)')
    parser.add_argument('--data-root', default=None, help='override the dataset\'s data_root')
    parser.add_argument('--ncols', type=int, default=None, help='tiles per row of a panel')
    parser.add_argument('--scale', type=int, default=0,
                        help='integer zoom of the tiles; 0 (default): smallest zoom that makes '
                        'the short side >= 192 px')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_dataloader.dataset.tasks='
                        '"[semseg,depth]"')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be >= 1, got {args.num}')
    if args.scale < 0:
        parser.error(f'--scale must be >= 0, got {args.scale}')
    return args


def _innermost_datasets(ds_cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The leaf dataset configs (inside wrappers such as RepeatDataset / ConcatDataset)."""
    if 'dataset' in ds_cfg:
        return _innermost_datasets(ds_cfg['dataset'])
    if 'datasets' in ds_cfg:
        return [leaf for d in ds_cfg['datasets'] for leaf in _innermost_datasets(d)]
    return [ds_cfg]


def dataset_config(cfg: Config, split: str, no_pipeline: bool = False,
                   data_root: Optional[str] = None) -> Dict[str, Any]:
    """The dataset config of ``split`` with the requested overrides applied."""
    key = f'{split}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        raise KeyError(f'config {cfg.filename} has no {key}.dataset (keys: {sorted(cfg.keys())})')
    ds_cfg = copy.deepcopy(cfg[key]['dataset'])
    for leaf in _innermost_datasets(ds_cfg):
        if data_root is not None:
            leaf['data_root'] = data_root
        if no_pipeline:
            leaf['pipeline'] = copy.deepcopy(LOAD_ONLY)
    return ds_cfg


def sample_arrays(item: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, np.ndarray], str]:
    """``(image RGB (H, W, 3), {task: map in pipeline layout}, img_id)`` of a dataset item.

    Works on packed items (``inputs`` + ``data_samples``) and on raw results dicts
    (``img`` + ``gt_<task>``, e.g. with ``--no-pipeline``).
    """
    from mtdense.visualization import to_numpy_map

    if 'inputs' in item and 'data_samples' in item:
        sample = item['data_samples']
        img = item['inputs'].permute(1, 2, 0).cpu().numpy()
        tasks = sample.metainfo.get('tasks') or sample.gt_tasks
        gts = {t: to_numpy_map(sample.get_gt(t)) for t in tasks}
        img_id = sample.metainfo.get('img_id', '')
    elif 'img' in item:
        img = item['img']
        gts = {t: item[f'gt_{t}'] for t in item.get('task_fields', [])}
        img_id = item.get('img_id', '')
    else:
        raise KeyError(f'dataset item has neither inputs/data_samples nor img (keys: '
                       f'{sorted(item)}); does the pipeline load the image?')
    if img.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image for display, got {img.dtype}; browse the '
                         'pipeline output before normalisation')
    return np.ascontiguousarray(img), gts, str(img_id)


def browse(cfg: Config, out_dir: str, num: int = 8, split: str = 'train',
           no_pipeline: bool = False, data_root: Optional[str] = None,
           ncols: Optional[int] = None, scale: int = 0) -> List[str]:
    """Build the dataset, render ``num`` samples and return the written paths."""
    from mtdense.registry import DATASETS
    from mtdense.utils import register_all_modules
    from mtdense.visualization import render_sample

    register_all_modules()
    dataset = DATASETS.build(dataset_config(cfg, split, no_pipeline, data_root))
    palette = dataset.metainfo.get('palette')
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for idx in range(min(num, len(dataset))):
        img, gts, img_id = sample_arrays(dataset[idx])
        h, w = img.shape[:2]
        zoom = scale or max(1, -(-192 // min(h, w)))
        # Maps are drawn at the image's size (the test pipeline keeps ground truth
        # at the original size while the image is resized).
        panel = render_sample(img, gts, palettes={'semseg': palette} if palette else None,
                              ncols=ncols, tile_hw=(h * zoom, w * zoom),
                              img_title=img_id or 'image')
        safe_id = ''.join(c if c.isalnum() or c in '-_' else '_' for c in img_id)
        path = osp.join(out_dir, f'{idx:05d}_{safe_id}.png' if safe_id else f'{idx:05d}.png')
        if not cv2.imwrite(path, np.ascontiguousarray(panel[..., ::-1])):  # RGB -> BGR
            raise OSError(f'could not write {path}')
        paths.append(path)
        shapes = ', '.join(f'{t} {tuple(a.shape[:2])}' for t, a in gts.items())
        print(f'[{idx + 1}/{min(num, len(dataset))}] {path}: image {img.shape[:2]}; {shapes}')
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mtdense.utils.config_names import resolve_config
    cfg = Config.fromfile(resolve_config(args.config))  # a file or a zoo name
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    paths = browse(cfg, args.out, args.num, args.split, args.no_pipeline, args.data_root,
                   args.ncols, args.scale)
    print(f'wrote {len(paths)} panels to {args.out}')
    return 0
