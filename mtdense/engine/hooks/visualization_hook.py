"""Write image / ground truth / prediction panels during validation and testing."""
from __future__ import annotations

import os.path as osp
import re
from typing import Optional, Sequence

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mtdense.registry import HOOKS

__all__ = ['MultiTaskVisualizationHook']


def _train_iter(runner) -> int:
    """The training iteration, or 0 when there is no built training loop (testing).

    ``runner.iter`` builds the training loop (and its dataloader) on first access, so a
    test run would need the training split to exist.
    """
    from mmengine.runner import BaseLoop
    if not hasattr(runner, '_train_loop'):  # not an mmengine Runner: trust its iter
        return int(runner.iter)
    return runner.iter if isinstance(runner._train_loop, BaseLoop) else 0


def _safe_name(name: str) -> str:
    """A file-name-safe version of a sample id (path separators and odd characters -> '_')."""
    return re.sub(r'[^0-9A-Za-z._-]+', '_', name).strip('._') or 'sample'


@HOOKS.register_module()
class MultiTaskVisualizationHook(Hook):
    """Write one PNG panel (image, GT row, prediction row) per sample, rank 0 only.

    Used by ``tools/test.py --show-dir DIR``. Panels of the test loop go to
    ``out_dir/<img_id>.png``; those of a validation run during training to
    ``out_dir/iter_<n>/<img_id>.png`` (``n`` = training iteration), so later
    validations do not overwrite earlier ones. Only the first ``max_samples``
    samples (of rank 0's share of the data under DDP) of every validation/test
    run are drawn, from the iterations ``0, interval, 2 * interval, ...``.

    The panels are drawn by ``runner.visualizer`` if it is a
    :class:`~mtdense.visualization.MultiTaskVisualizer`; otherwise the hook uses
    its own one, with the dataset metainfo (palette) the loop gave the runner's.

    Args:
        out_dir: output folder (created if needed).
        max_samples: panels per validation/test run (>= 1).
        interval: draw from every ``interval``-th iteration (>= 1).
    """

    priority = 'NORMAL'

    def __init__(self, out_dir: str, max_samples: int = 8, interval: int = 1) -> None:
        if not isinstance(out_dir, str) or not out_dir:
            raise ValueError(f'MultiTaskVisualizationHook: out_dir must be a non-empty path, '
                             f'got {out_dir!r}')
        if int(max_samples) < 1:
            raise ValueError(f'MultiTaskVisualizationHook: max_samples must be >= 1, got '
                             f'{max_samples}')
        if int(interval) < 1:
            raise ValueError(f'MultiTaskVisualizationHook: interval must be >= 1, got {interval}')
        self.out_dir = out_dir
        self.max_samples = int(max_samples)
        self.interval = int(interval)
        self._count = 0
        self._visualizer = None
        self.written: list = []  # paths written in the current run (for callers and tests)

    # ----------------------------------------------------------------- helpers
    def _get_visualizer(self, runner):
        from mtdense.visualization.visualizer import MultiTaskVisualizer
        vis = getattr(runner, 'visualizer', None)
        if isinstance(vis, MultiTaskVisualizer):
            return vis
        if self._visualizer is None:
            # A private instance (not made "current"), so the runner's visualizer stays in charge
            # of logging.
            self._visualizer = MultiTaskVisualizer(name=f'mtdense_vis_hook_{id(self)}')
        if vis is not None and vis.dataset_meta is not None:
            self._visualizer.dataset_meta = vis.dataset_meta
        return self._visualizer

    @staticmethod
    def _image(data_batch: dict, index: int, data_sample) -> Optional[np.ndarray]:
        """The sample's original image from ``img_path``, else the (unnormalised) batch input."""
        path = data_sample.metainfo.get('img_path')
        if path and osp.isfile(path):
            from mtdense.datasets.io import decode
            return decode('image', path)
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        if inputs is None or index >= len(inputs):
            return None
        img = inputs[index]
        img = img.detach().cpu().numpy() if hasattr(img, 'detach') else np.asarray(img)
        if img.ndim != 3 or img.shape[0] != 3 or img.dtype != np.uint8:
            return None  # not a displayable packed RGB uint8 image; draw the maps only
        h, w = data_sample.metainfo.get('img_shape', img.shape[1:])[:2]
        return np.ascontiguousarray(img[:, :h, :w].transpose(1, 2, 0))

    def _sample_name(self, data_sample, fallback: str) -> str:
        meta = data_sample.metainfo
        if meta.get('img_id') is not None:
            return _safe_name(str(meta['img_id']))
        if meta.get('img_path'):
            return _safe_name(osp.splitext(osp.basename(meta['img_path']))[0])
        return fallback

    # ------------------------------------------------------------------- hooks
    def _reset(self, runner) -> None:
        self._count = 0
        self.written = []

    def before_val_epoch(self, runner) -> None:
        self._reset(runner)

    def before_test_epoch(self, runner) -> None:
        self._reset(runner)

    def _after_iter(self, runner, batch_idx: int, data_batch: dict,
                    outputs: Optional[Sequence], mode: str) -> None:
        if not is_main_process() or outputs is None:
            return
        if self._count >= self.max_samples or batch_idx % self.interval != 0:
            return
        vis = self._get_visualizer(runner)
        step = _train_iter(runner)
        out_dir = self.out_dir if mode == 'test' else osp.join(self.out_dir, f'iter_{step}')
        for i, sample in enumerate(outputs):
            if self._count >= self.max_samples:
                break
            name = self._sample_name(sample, f'{batch_idx:05d}_{i}')
            out_file = osp.join(out_dir, f'{name}.png')
            if out_file in self.written:  # duplicate ids: keep every panel
                out_file = osp.join(out_dir, f'{name}_{self._count}.png')
            vis.add_datasample(name, self._image(data_batch, i, sample), sample,
                               out_file=out_file, step=step)
            self.written.append(out_file)
            self._count += 1

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict = None,
                       outputs: Optional[Sequence] = None) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, 'val')

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict = None,
                        outputs: Optional[Sequence] = None) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, 'test')
