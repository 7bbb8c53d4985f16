"""A data sample holding ground truth and predictions for several dense tasks."""
from __future__ import annotations

from typing import List

from mmengine.structures import BaseDataElement, PixelData


class MultiTaskDataSample(BaseDataElement):
    """One image's multi-task annotations and predictions.

    Per task ``t`` it holds ``gt_<t>`` and ``pred_<t>`` as :class:`PixelData`
    whose ``data`` is a (C, H, W) tensor (C = 1 for label maps, saliency and depth,
    3 for normals). Meta information (``img_path``, ``ori_shape``, ``img_shape``,
    ``pad_shape``, ``flip``, ``tasks`` ...) lives in the metainfo as in mmseg.
    """

    def set_gt(self, task: str, data) -> None:
        self.set_field(_as_pixel_data(data), f'gt_{task}', dtype=PixelData)

    def get_gt(self, task: str) -> PixelData:
        key = f'gt_{task}'
        if key not in self:
            raise KeyError(f'data sample has no ground truth for task {task!r} '
                           f'(has: {self.gt_tasks})')
        return getattr(self, key)

    def set_pred(self, task: str, data) -> None:
        self.set_field(_as_pixel_data(data), f'pred_{task}', dtype=PixelData)

    def get_pred(self, task: str) -> PixelData:
        key = f'pred_{task}'
        if key not in self:
            raise KeyError(f'data sample has no prediction for task {task!r} '
                           f'(has: {self.pred_tasks})')
        return getattr(self, key)

    @property
    def gt_tasks(self) -> List[str]:
        return sorted(k[3:] for k in self.keys() if k.startswith('gt_'))

    @property
    def pred_tasks(self) -> List[str]:
        return sorted(k[5:] for k in self.keys() if k.startswith('pred_'))


def _as_pixel_data(data) -> PixelData:
    return data if isinstance(data, PixelData) else PixelData(data=data)
