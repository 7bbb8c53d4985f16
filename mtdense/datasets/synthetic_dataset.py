"""Reader of the procedurally rendered synthetic scenes (``tools/make_synthetic.py``).

Layout (see ``docs/architecture.md``), read through the NYUD-v2 decoders for
semseg/depth/normals::

    <root>/images/<id>.png         RGB uint8
    <root>/segmentation/<id>.png   uint8, 0 = unlabeled, k + 1 = class k
    <root>/human_parts/<id>.png    uint8 part ids 0..6, 255 ignored (all 255 if no person)
    <root>/saliency/<id>.png       uint8 0 / 255
    <root>/normals/<id>.npy        float32 (H, W, 3), zero = invalid
    <root>/depth/<id>.npy          float32 (H, W) metres, 0 = invalid
    <root>/gt_sets/{train,val}.txt one id per line
    <root>/meta.json               classes, palette, size, seed, counts, camera, version
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict

from mtdense.registry import DATASETS
from mtdense.tasks import HUMAN_PARTS_CLASSES

from .base import BaseMultiTaskDataset
from .io import DataFileError


def load_synthetic_meta(data_root: str) -> Dict[str, Any]:
    """Read and validate ``<data_root>/meta.json`` (``classes`` and ``palette`` required)."""
    path = os.path.join(data_root, 'meta.json')
    if not os.path.isfile(path):
        raise DataFileError(f'{path}: meta.json not found (expected the synthetic dataset '
                            f'description written by tools/make_synthetic.py)')
    try:
        with open(path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataFileError(f'{path}: cannot parse meta.json as JSON ({e})') from e
    if not isinstance(meta, dict):
        raise DataFileError(f'{path}: meta.json must hold a JSON object, got '
                            f'{type(meta).__name__}')
    classes = meta.get('classes')
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c for c in classes)):
        raise DataFileError(f'{path}: key "classes" must be a non-empty list of class names, '
                            f'got {classes!r}')
    if len(set(classes)) != len(classes):
        raise DataFileError(f'{path}: key "classes" lists a name twice: {classes}')
    if len(classes) > 254:  # stored as k + 1 in uint8, and 255 is reserved
        raise DataFileError(f'{path}: key "classes" has {len(classes)} entries; at most 254 fit '
                            f'the uint8 label PNGs')
    palette = meta.get('palette')
    ok = (isinstance(palette, list) and len(palette) == len(classes) and all(
        isinstance(c, list) and len(c) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
        for c in palette))
    if not ok:
        raise DataFileError(f'{path}: key "palette" must be a list of {len(classes)} [r, g, b] '
                            f'integer triples in 0..255 (one per class), got {palette!r}')
    return meta


@DATASETS.register_module()
class SyntheticMTDataset(BaseMultiTaskDataset):
    """Synthetic multi-task scenes: all five tasks, classes/palette from ``meta.json``.

    Args:
        data_root: folder written by ``tools/make_synthetic.py``.
        split: ``'train'`` or ``'val'`` (any ``gt_sets/<split>.txt``).
        tasks: subset of ``('semseg', 'human_parts', 'saliency', 'normals', 'depth', 'edge')``;
            None: the five tasks other than ``edge`` (listed: read from ``edge/<id>.png``).
        **kwargs: see :class:`BaseMultiTaskDataset`.

    The whole ``meta.json`` is kept as :attr:`meta` (camera intrinsics, seed, ...).
    """

    AVAILABLE_TASKS = ('semseg', 'human_parts', 'saliency', 'normals', 'depth', 'edge')
    DEFAULT_TASKS = ('semseg', 'human_parts', 'saliency', 'normals', 'depth')
    SPLIT_FILE = os.path.join('gt_sets', '{split}.txt')

    def _dataset_metainfo(self) -> Dict[str, Any]:
        self.meta = load_synthetic_meta(self.data_root)
        return dict(classes=tuple(self.meta['classes']),
                    palette=[list(c) for c in self.meta['palette']],
                    part_classes=HUMAN_PARTS_CLASSES)

    def image_file(self, img_id: str) -> str:
        return os.path.join(self.data_root, 'images', f'{img_id}.png')

    def ann_entry(self, task: str, img_id: str) -> Dict[str, Any]:
        root = self.data_root
        if task == 'semseg':
            return dict(path=os.path.join(root, 'segmentation', f'{img_id}.png'),
                        decoder='label_png_minus1', num_classes=len(self._metainfo['classes']))
        if task == 'human_parts':
            return dict(path=os.path.join(root, 'human_parts', f'{img_id}.png'),
                        decoder='parts_png', num_classes=len(HUMAN_PARTS_CLASSES))
        if task == 'saliency':
            return dict(path=os.path.join(root, 'saliency', f'{img_id}.png'),
                        decoder='saliency_png')
        if task == 'normals':
            return dict(path=os.path.join(root, 'normals', f'{img_id}.npy'), decoder='normals_npy')
        if task == 'depth':
            return dict(path=os.path.join(root, 'depth', f'{img_id}.npy'), decoder='depth_npy')
        if task == 'edge':
            path = os.path.join(root, 'edge', f'{img_id}.png')
            if not os.path.isdir(os.path.dirname(path)):
                raise DataFileError(f'{os.path.dirname(path)}: no edge maps in this synthetic '
                                    f'dataset (written by generator {self.meta.get("version")!r}'
                                    '; edges exist from 1.1 on): regenerate it with '
                                    'tools/make_synthetic.py')
            return dict(path=path, decoder='edge_png')
        raise KeyError(f'SyntheticMTDataset has no task {task!r}')
