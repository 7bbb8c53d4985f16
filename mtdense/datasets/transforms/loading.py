"""Loading transforms: read the image and each task's ground truth from disk.

Files are read through :func:`mtdense.datasets.io.decode`, so a dataset's data
info names the decoder of every file (``ann_info[task] = dict(path=...,
decoder=..., **decoder_kwargs)``) and the same code reads synthetic and real data.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mtdense.datasets import io as mtio
from mtdense.registry import TRANSFORMS
from mtdense.tasks import check_tasks, get_task



@TRANSFORMS.register_module()
class LoadMultiTaskImage(BaseTransform):
    """Load ``results['img_path']`` as an RGB uint8 (H, W, 3) image.

    Adds ``img``, ``img_shape`` and ``ori_shape`` (both ``(h, w)``).

    Args:
        decoder: name of the image decoder in ``mtdense.datasets.io.DECODERS``.
    """

    def __init__(self, decoder: str = 'image') -> None:
        self.decoder = decoder

    def transform(self, results: dict) -> dict:
        if 'img_path' not in results:
            raise KeyError(f'LoadMultiTaskImage: results has no "img_path" (keys: '
                           f'{sorted(results)})')
        path = results['img_path']
        img = mtio.decode(self.decoder, path)
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 \
                or img.shape[2] != 3:
            raise ValueError(f'{path}: decoder {self.decoder!r} returned '
                             f'{getattr(img, "dtype", type(img))} '
                             f'{getattr(img, "shape", "")}; expected an (H, W, 3) uint8 RGB image')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(decoder={self.decoder!r})'


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(BaseTransform):
    """Decode each task's ground truth from ``results['ann_info']``.

    Adds ``gt_<task>`` (conventions in :mod:`mtdense.tasks`) and appends the tasks
    to ``task_fields``. Every map must have the image's *original* size
    (``ori_shape``), so this may run after the image was resized (test pipeline:
    ground truth stays at the original resolution). Under the ``'resized'``
    evaluation protocol (set by ``MTTestResize``) every map is then resized to the
    sample's ``eval_shape`` with its task's resampling rule.

    Args:
        tasks: tasks to load; ``None`` loads every task in ``ann_info``. A task that
            the sample has no annotation for is a ``KeyError``.
    """

    def __init__(self, tasks: Optional[Sequence[str]] = None) -> None:
        self.tasks: Optional[List[str]] = (
            check_tasks(tasks, where='LoadMultiTaskAnnotations.tasks')
            if tasks is not None else None)

    def transform(self, results: dict) -> dict:
        img_path = results.get('img_path', '<unknown image>')
        if 'ann_info' not in results:
            raise KeyError(f'LoadMultiTaskAnnotations: results for {img_path} have no '
                           '"ann_info"')
        if 'ori_shape' not in results:
            raise KeyError(f'LoadMultiTaskAnnotations: results for {img_path} have no '
                           '"ori_shape"; put LoadMultiTaskImage first')
        ann_info = results['ann_info']
        tasks = self.tasks if self.tasks is not None else list(ann_info)
        expected_hw = tuple(int(s) for s in results['ori_shape'][:2])
        fields = list(results.get('task_fields', []))
        for task in tasks:
            if task not in ann_info:
                raise KeyError(f'task {task!r} has no annotation for {img_path}; '
                               f'annotated tasks: {sorted(ann_info)}')
            definition = get_task(task)  # KeyError for names no task definition has
            info = dict(ann_info[task])
            try:
                path, decoder = info.pop('path'), info.pop('decoder')
            except KeyError as e:
                raise KeyError(f'ann_info[{task!r}] of {img_path} lacks {e.args[0]!r}; '
                               'expected dict(path=..., decoder=..., **kwargs)') from None
            arr = mtio.decode(decoder, path, **info)
            try:
                definition.check_map(arr)
            except (TypeError, ValueError) as e:
                raise ValueError(f'{path}: {e} (decoder {decoder!r})') from None
            arr = definition.as_dtype(arr, path)
            got_hw = tuple(arr.shape[:2])
            if got_hw != expected_hw:
                raise ValueError(f'{path}: task {task!r} map has size (h, w) = {got_hw}, '
                                 f'expected {expected_hw} (the original size of image '
                                 f'{img_path})')
            if results.get('eval_protocol', 'native') == 'resized':
                arr = definition.resize(arr, tuple(results['eval_shape'][:2]))
            results[f'gt_{task}'] = arr
            if task not in fields:
                fields.append(task)
        results['task_fields'] = fields
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(tasks={self.tasks})'


@TRANSFORMS.register_module()
class LoadMultiTaskImageFromArray(BaseTransform):
    """In-memory counterpart of ``LoadMultiTaskImage``: ``results['img']`` is an RGB array.

    Checks the array (RGB uint8 (H, W, 3)) and sets ``img_shape``/``ori_shape``;
    ``img_path`` is set to None unless given.
    """

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3 and min(img.shape[:2]) > 0):
            raise ValueError('LoadMultiTaskImageFromArray: expected an RGB uint8 (H, W, 3) numpy '
                             'array with H, W > 0, got '
                             f'{getattr(img, "dtype", type(img).__name__)} '
                             f'{getattr(img, "shape", "")}')
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results.setdefault('img_path', None)
        return results
