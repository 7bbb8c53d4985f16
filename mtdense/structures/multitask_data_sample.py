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
        return self._task_field('gt', task, 'ground truth')

    def set_pred(self, task: str, data) -> None:
        self.set_field(_as_pixel_data(data), f'pred_{task}', dtype=PixelData)

    def get_pred(self, task: str) -> PixelData:
        return self._task_field('pred', task, 'prediction')

    @property
    def gt_tasks(self) -> List[str]:
        return self._tasks_of('gt')

    @property
    def pred_tasks(self) -> List[str]:
        return self._tasks_of('pred')

    def _task_field(self, prefix: str, task: str, what: str) -> PixelData:
        key = f'{prefix}_{task}'
        if key not in self:
            raise KeyError(f'data sample has no {what} for task {task!r} '
                           f'(has: {self._tasks_of(prefix)})')
        return getattr(self, key)

    def _tasks_of(self, prefix: str) -> List[str]:
        """The tasks of the ``<prefix>_<task>`` fields, sorted."""
        start = len(prefix) + 1
        return sorted(k[start:] for k in self.keys() if k.startswith(f'{prefix}_'))


def _as_pixel_data(data) -> PixelData:
    return data if isinstance(data, PixelData) else PixelData(data=data)
