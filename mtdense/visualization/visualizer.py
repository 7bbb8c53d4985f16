"""``MultiTaskVisualizer``: one labelled panel per sample, ground truth over prediction.

Layout of :meth:`MultiTaskVisualizer.add_datasample`::

    image | GT task_1   | GT task_2   | ...
    image | pred task_1 | pred task_2 | ...

Colours (see :mod:`mtdense.visualization.colorize`): semantic classes use the
dataset palette (``dataset_meta['palette']``), human parts a fixed 7-colour
palette, saliency a ``viridis`` heatmap, normals RGB = (n + 1) / 2, depth a
``plasma`` colormap on the ground truth's range (shared by GT and prediction, so
the two are comparable). Invalid pixels are black.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.visualization import Visualizer

from mtdense.registry import VISUALIZERS
from mtdense.tasks import get_task

from .colorize import colorize_task, make_panel, to_numpy_map

__all__ = ['MultiTaskVisualizer', 'write_rgb_png']

ArrayLike = Any  # numpy map (pipeline layout), tensor or PixelData (packed layout)


def write_rgb_png(path: str, image: np.ndarray) -> None:
    """Write an RGB uint8 image to ``path`` (folders are created); raise if it fails."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        raise ValueError(f'{path}: expected an RGB uint8 (H, W, 3) image, got '
                         f'{getattr(image, "dtype", type(image))} {getattr(image, "shape", "")}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1])):  # RGB -> BGR for OpenCV
        raise OSError(f'could not write the image file {path}')


def _check_image(image: np.ndarray, where: str) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3):
        raise ValueError(f'{where}: expected an RGB uint8 (H, W, 3) image, got '
                         f'{getattr(image, "dtype", type(image))} {getattr(image, "shape", "")}')
    return image


def _data(field):
    """The data of a ground-truth / prediction field (PixelData -> its tensor)."""
    return getattr(field, 'data', field)


@VISUALIZERS.register_module()
class MultiTaskVisualizer(Visualizer):
    """Draw image, ground truth and predictions of every task of a sample.

    Args:
        name: instance name (mmengine ``ManagerMixin``).
        image: optional initial image (mmengine ``Visualizer``).
        vis_backends: mmengine visualisation backends; panels go to them through
            :meth:`add_image` when no ``out_file`` is given.
        save_dir: folder of the backends.
        palettes: ``{task: (N, 3) RGB palette}`` overriding the defaults of seg
            tasks (semseg: ``dataset_meta['palette']``; human_parts: the fixed
            parts palette).
        saliency_cmap: matplotlib colormap of saliency maps.
        depth_cmap: matplotlib colormap of depth maps.
        min_tile_side: tiles are zoomed by the smallest integer factor that makes
            their short side at least this many pixels (labels stay legible on
            small images); 0 disables zooming.
        font_scale: OpenCV font scale of the tile titles; ``None`` scales with
            the tile width.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 palettes: Optional[Mapping[str, Sequence]] = None,
                 saliency_cmap: str = 'viridis',
                 depth_cmap: str = 'plasma',
                 min_tile_side: int = 192,
                 font_scale: Optional[float] = None) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        self.palettes: Dict[str, np.ndarray] = {}
        for task, pal in dict(palettes or {}).items():
            if not get_task(task).has_classes:
                raise ValueError(f'MultiTaskVisualizer: palettes[{task!r}] given, but {task!r} '
                                 'is not a segmentation task')
            self.palettes[task] = self._as_palette(pal, f'palettes[{task!r}]')
        self.saliency_cmap = saliency_cmap
        self.depth_cmap = depth_cmap
        if int(min_tile_side) < 0:
            raise ValueError(f'MultiTaskVisualizer: min_tile_side must be >= 0, got '
                             f'{min_tile_side}')
        self.min_tile_side = int(min_tile_side)
        self.font_scale = font_scale

    # ----------------------------------------------------------------- colours
    @staticmethod
    def _as_palette(palette, where: str) -> np.ndarray:
        arr = np.asarray(palette)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.size == 0 or arr.min() < 0 or arr.max() > 255:
            raise ValueError(f'MultiTaskVisualizer: {where} must be a non-empty list of [r, g, b] '
                             f'values in 0..255, got shape {arr.shape}')
        return arr.astype(np.uint8)

    def palette_of(self, task: str) -> Optional[np.ndarray]:
        """Palette of a seg task: explicit override, else the dataset's (semseg), else None."""
        spec = get_task(task)
        if not spec.has_classes:
            return None
        if task in self.palettes:
            return self.palettes[task]
        if spec.name in self.palettes:  # clones such as 'semseg_2' use their base's palette
            return self.palettes[spec.name]
        if spec.name == 'semseg' and self.dataset_meta and self.dataset_meta.get('palette'):
            return self._as_palette(self.dataset_meta['palette'], "dataset_meta['palette']")
        return None  # colorize_task: parts palette for human_parts, default palette otherwise

    def colorize(self, task: str, data: ArrayLike,
                 depth_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
        """RGB uint8 rendering of one task map (pipeline or packed layout)."""
        return colorize_task(task, _data(data), self.palette_of(task),
                             saliency_cmap=self.saliency_cmap,
                             depth_cmap=self.depth_cmap, range=depth_range)

    @staticmethod
    def depth_range(depth: ArrayLike) -> Optional[Tuple[float, float]]:
        """(min, max) over the valid (> 0, finite) pixels of a depth map; None if none."""
        arr = to_numpy_map(depth)
        valid = arr[np.isfinite(arr) & (arr > 0)]
        if valid.size == 0:
            return None
        return float(valid.min()), float(valid.max())

    # ------------------------------------------------------------------ panels
    def _tile_hw(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        h, w = hw
        zoom = max(1, math.ceil(self.min_tile_side / max(min(h, w), 1))) \
            if self.min_tile_side else 1
        return h * zoom, w * zoom

    def _font_scale(self, tile_w: int) -> float:
        if self.font_scale is not None:
            return float(self.font_scale)
        return float(np.clip(tile_w / 500.0, 0.35, 0.8))

    @staticmethod
    def _blank(hw: Tuple[int, int]) -> np.ndarray:
        return np.full(hw + (3,), 128, dtype=np.uint8)

    def draw_rows(self, image: Optional[np.ndarray],
                  rows: Sequence[Tuple[str, Mapping[str, Optional[np.ndarray]]]],
                  tasks: Sequence[str]) -> np.ndarray:
        """Tile rows of coloured maps: one row per ``(label, {task: rgb or None})``.

        Every row starts with ``image`` (if given) and has one column per task
        in ``tasks``; a missing map (None or absent) is a grey tile titled
        ``'<label> <task>: none'``. Tiles have the size of the first map (or the
        image), zoomed by ``min_tile_side``.
        """
        if image is not None:
            _check_image(image, 'MultiTaskVisualizer image')
        # Maps define the tile size (ground truth and predictions are at the original size);
        # the image is resized to it.
        map_hw = next((m.shape[:2] for _, maps in rows for m in maps.values() if m is not None),
                      image.shape[:2] if image is not None else None)
        if map_hw is None:
            raise ValueError('MultiTaskVisualizer: nothing to draw (no image and no maps)')
        tile_hw = self._tile_hw(tuple(map_hw))
        img_tile = None
        if image is not None:
            img_tile = cv2.resize(image, (tile_hw[1], tile_hw[0]), interpolation=cv2.INTER_LINEAR)
        tiles: Dict[str, np.ndarray] = {}
        titles: Dict[str, str] = {}
        for r, (label, maps) in enumerate(rows):
            if img_tile is not None:
                tiles[f'{r}/image'] = img_tile
                titles[f'{r}/image'] = 'image'
            for task in tasks:
                m = maps.get(task)
                key = f'{r}/{task}'
                tiles[key] = m if m is not None else self._blank(tuple(map_hw))
                titles[key] = f'{label} {task}' if m is not None else f'{label} {task}: none'
        ncols = len(tasks) + (img_tile is not None)
        return make_panel(None, tiles, titles=titles, ncols=max(ncols, 1), tile_hw=tile_hw,
                          font_scale=self._font_scale(tile_hw[1]))

    def draw_predictions(self, image: Optional[np.ndarray],
                         preds: Mapping[str, ArrayLike]) -> np.ndarray:
        """One row: ``image`` then every task of ``preds`` (``{task: map}``), coloured."""
        coloured = {t: self.colorize(t, p) for t, p in preds.items()}
        return self.draw_rows(image, [('pred', coloured)], list(preds))

    def draw_datasample(self, image: Optional[np.ndarray], data_sample,
                        draw_gt: bool = True, draw_pred: bool = True) -> np.ndarray:
        """Panel of a :class:`~mtdense.structures.MultiTaskDataSample` (GT row over pred row)."""
        if not (draw_gt or draw_pred):
            raise ValueError('MultiTaskVisualizer: draw_gt and draw_pred are both False; '
                             'nothing to draw')
        gt_tasks = list(data_sample.gt_tasks) if draw_gt else []
        pred_tasks = list(data_sample.pred_tasks) if draw_pred else []
        # Column order: the sample's task list (pipeline order), then any other task.
        order = [t for t in (data_sample.metainfo.get('tasks') or [])]
        tasks = [t for t in order if t in gt_tasks or t in pred_tasks]
        tasks += [t for t in gt_tasks + pred_tasks if t not in tasks]
        if not tasks:
            raise ValueError('MultiTaskVisualizer: the data sample has no gt_<task> / '
                             f'pred_<task> fields to draw (fields: {list(data_sample.keys())})')
        gts = {t: data_sample.get_gt(t) for t in gt_tasks}
        preds = {t: data_sample.get_pred(t) for t in pred_tasks}
        ranges: Dict[str, Optional[Tuple[float, float]]] = {}
        for t in tasks:
            # e.g. depth: GT and prediction on the GT's valid range (else the prediction's)
            ranges[t] = get_task(t).shared_range(_data(gts.get(t)), _data(preds.get(t)))
        rows = []
        if draw_gt:
            rows.append(('GT', {t: self.colorize(t, g, ranges.get(t)) for t, g in gts.items()}))
        if draw_pred:
            rows.append(('pred', {t: self.colorize(t, p, ranges.get(t))
                                  for t, p in preds.items()}))
        return self.draw_rows(image, rows, tasks)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: Optional[np.ndarray],
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0) -> np.ndarray:
        """Draw the panel of ``data_sample``; write it to ``out_file`` and the backends.

        Args:
            name: identifier of the panel (backends, window title).
            image: RGB uint8 (H, W, 3), resized to the maps' size; may be None.
            data_sample: :class:`~mtdense.structures.MultiTaskDataSample` with
                ``gt_<task>`` and/or ``pred_<task>`` fields.
            draw_gt / draw_pred: which rows to draw.
            show: also display the panel (needs a display).
            wait_time: display time in seconds with ``show``.
            out_file: PNG path to write the panel to (it goes to the vis backends in any case).
            step: global step for the backends.

        Returns:
            The panel, RGB uint8.
        """
        if data_sample is None:
            raise ValueError(f'MultiTaskVisualizer.add_datasample({name!r}): data_sample is None')
        panel = self.draw_datasample(image, data_sample, draw_gt=draw_gt, draw_pred=draw_pred)
        self.set_image(panel)
        if show:
            self.show(panel, win_name=name, wait_time=wait_time)
        if out_file is not None:
            write_rgb_png(out_file, panel)
        # every configured backend gets the panel too (TensorBoard, W&B, local vis_data);
        # writing only out_file kept the panels away from the backends
        self.add_image(name, panel, step)
        return panel
