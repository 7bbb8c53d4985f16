"""Pack a pipeline's results into model inputs: a :class:`MultiTaskDataSample` for dense
tasks (:class:`PackMultiTaskInputs`), a labelled ``BaseDataElement`` for multi-domain
classification (:class:`PackDomainInputs`)."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from mtdense.registry import TRANSFORMS
from mtdense.structures import MultiTaskDataSample

from mtdense.tasks import get_task

DEFAULT_META_KEYS: Tuple[str, ...] = ('img_path', 'img_id', 'sample_idx', 'ori_shape',
                                      'img_shape', 'pad_shape', 'scale_factor', 'flip',
                                      'flip_direction', 'rotate_angle', 'tasks',
                                      'eval_protocol', 'eval_shape')


def _default_meta(results: dict, key: str):
    """Values for meta keys that a pipeline without the matching transform leaves unset."""
    img_shape = tuple(results['img'].shape[:2])
    defaults = dict(img_shape=img_shape, pad_shape=results.get('img_shape', img_shape),
                    scale_factor=(1.0, 1.0), flip=False, flip_direction=None,
                    rotate_angle=0.0, tasks=list(results.get('task_fields', [])),
                    eval_protocol='native',
                    eval_shape=tuple(results.get('ori_shape', img_shape))[:2])
    if key not in defaults:
        raise KeyError(f'PackMultiTaskInputs: meta key {key!r} is not in the results '
                       f'({results.get("img_path", "unknown image")}); available keys: '
                       f'{sorted(results)}')
    return defaults[key]


@TRANSFORMS.register_module()
class PackMultiTaskInputs(BaseTransform):
    """Pack ``img`` and every ``gt_<task>`` for the model.

    Output ``dict(inputs, data_samples)``:

    * ``inputs``: uint8 tensor (3, H, W), RGB.
    * ``data_samples``: :class:`MultiTaskDataSample` with ``gt_<task>`` ``PixelData``
      per task in ``task_fields`` -- label tasks int64 (1, H, W), normals float32
      (3, H, W), depth float32 (1, H, W) -- and the ``meta_keys`` as metainfo.
      Meta keys that no transform set (e.g. ``flip`` without a flip transform) get
      neutral defaults; any other missing key is an error.

    Args:
        meta_keys: keys copied from the results into the metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError('PackMultiTaskInputs: results has no "img"')
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError('PackMultiTaskInputs expects an (H, W, 3) uint8 RGB image, got '
                             f'{img.dtype} {img.shape} ({results.get("img_path", "?")})')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

        sample = MultiTaskDataSample()
        for task in results.get('task_fields', []):
            key = f'gt_{task}'
            if key not in results:
                raise KeyError(f'PackMultiTaskInputs: task {task!r} is in task_fields but '
                               f'results has no {key!r}')
            definition = get_task(task)
            definition.check_map(results[key])
            sample.set_gt(task, definition.to_tensor(results[key]))

        metainfo = {}
        for key in self.meta_keys:
            if key == 'tasks':
                metainfo[key] = list(results.get('task_fields', []))
            elif key in results:
                metainfo[key] = results[key]
            else:
                metainfo[key] = _default_meta(results, key)
        sample.set_metainfo(metainfo)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'


@TRANSFORMS.register_module()
class PackDomainInputs(BaseTransform):
    """Pack an RGB uint8 image and its label for a multi-domain classifier.

    Gives ``inputs``: uint8 tensor (3, H, W) and ``data_samples``: a
    ``BaseDataElement`` with ``gt_label`` (int64 scalar tensor) and metainfo
    ``domain``, ``domain_idx``, ``img_path``, ``img_id``, ``ori_shape``, ``img_shape``.
    """

    META_KEYS = ('domain', 'domain_idx', 'img_path', 'img_id', 'ori_shape', 'img_shape')

    def transform(self, results: dict) -> dict:
        for key in ('img', 'domain', 'gt_label'):
            if key not in results:
                raise KeyError(f'PackDomainInputs: results has no {key!r} '
                               f'(keys: {sorted(results)})')
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'PackDomainInputs: {results.get("img_path")}: expected an (H, W, 3) '
                             f'image, got {getattr(img, "shape", type(img))}')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.META_KEYS if k in results})
        sample.gt_label = torch.tensor(int(results['gt_label']), dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)
