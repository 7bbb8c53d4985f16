"""NYUD-v2 multi-task release (``NYUD_MT``).

Layout read (exactly the release's)::

    <root>/images/<id>.jpg              480 x 640 RGB
    <root>/segmentation/<id>.png        uint8, 0 = unlabeled, k = class k - 1 (40 classes)
    <root>/depth/<id>.npy               float (H, W) metres, 0 = invalid
    <root>/normals/<id>.npy             float (H, W, 3), zero vector = invalid
    <root>/edge/<id>.npy                float (H, W) in [0, 1], edge = value > 0.5
    <root>/gt_sets/{train,val}.txt      795 / 654 ids
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

from mtdense.registry import DATASETS

from .base import BaseMultiTaskDataset, voc_palette

NYUV2_40_CLASSES: Tuple[str, ...] = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
    'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
    'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator', 'television', 'paper', 'towel',
    'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp',
    'bathtub', 'bag', 'otherstructure', 'otherfurniture', 'otherprop')

#: VOC colour-map entries 1..40 (entry 0, black, is skipped so no class is drawn black).
NYUV2_40_PALETTE = voc_palette(len(NYUV2_40_CLASSES) + 1)[1:]


@DATASETS.register_module()
class NYUDv2MTDataset(BaseMultiTaskDataset):
    """NYUD-v2 multi-task split (semseg, depth, normals; edge).

    Segmentation ignores the "unlabeled" class 0 (mapped to 255), so the 40
    classes are 0..39 as in the multi-task literature. ``tasks=None`` reads semseg,
    depth and normals; ``edge`` is read when listed (matching tolerance 0.011 of the
    diagonal, the NYUD convention, from the metainfo ``edge_max_dist``).

    Args:
        data_root: the ``NYUD_MT`` folder.
        split: ``'train'`` or ``'val'`` (any ``gt_sets/<split>.txt``).
        tasks: subset of ``('semseg', 'depth', 'normals', 'edge')``.
        **kwargs: see :class:`BaseMultiTaskDataset`.
    """

    METAINFO = dict(classes=NYUV2_40_CLASSES, palette=NYUV2_40_PALETTE, edge_max_dist=0.011)
    AVAILABLE_TASKS = ('semseg', 'depth', 'normals', 'edge')
    DEFAULT_TASKS = ('semseg', 'depth', 'normals')
    SPLIT_FILE = os.path.join('gt_sets', '{split}.txt')
    IMAGE_DIR, IMAGE_SUFFIX = 'images', '.jpg'

    def image_file(self, img_id: str) -> str:
        return os.path.join(self.data_root, self.IMAGE_DIR, img_id + self.IMAGE_SUFFIX)

    def _num_seg_classes(self) -> int:
        return len(self._metainfo['classes'])

    def ann_entry(self, task: str, img_id: str) -> Dict[str, Any]:
        root = self.data_root
        if task == 'semseg':
            return dict(path=os.path.join(root, 'segmentation', f'{img_id}.png'),
                        decoder='label_png_minus1', num_classes=self._num_seg_classes())
        if task == 'depth':
            return dict(path=os.path.join(root, 'depth', f'{img_id}.npy'), decoder='depth_npy')
        if task == 'normals':
            return dict(path=os.path.join(root, 'normals', f'{img_id}.npy'), decoder='normals_npy')
        if task == 'edge':
            return dict(path=os.path.join(root, 'edge', f'{img_id}.npy'), decoder='edge_npy')
        raise KeyError(f'{type(self).__name__} has no task {task!r}')
