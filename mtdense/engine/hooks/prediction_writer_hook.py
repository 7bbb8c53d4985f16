"""Write every test prediction to disk (``tools/test.py --out DIR``, as mmseg's ``--out``)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmengine.hooks import Hook

from mtdense.registry import HOOKS

__all__ = ['PredictionWriterHook']


@HOOKS.register_module()
class PredictionWriterHook(Hook):
    """One compressed ``<out_dir>/<img_id>.npz`` per test sample with its predictions at the
    evaluation size: seg labels uint8 (uint16 beyond 255 classes), saliency / normals / depth
    float16 (``mtdense.apis.inferencer.compact_raw``). Every rank writes its own samples.

    Args:
        out_dir: output folder (created if needed).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str) -> None:
        if not isinstance(out_dir, str) or not out_dir:
            raise ValueError(f'PredictionWriterHook: out_dir must be a non-empty path, got '
                             f'{out_dir!r}')
        self.out_dir = out_dir
        self.written = 0

    def before_test_epoch(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        self.written = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict = None,
                        outputs: Optional[Sequence] = None) -> None:
        from mtdense.structures import compact_raw, prediction_to_numpy
        from .visualization_hook import _safe_name
        for k, sample in enumerate(outputs or []):
            meta = sample.metainfo
            name = _safe_name(str(meta.get('img_id', f'{batch_idx:06d}_{k}')))
            tasks = [key[len('pred_'):] for key in sample.keys() if key.startswith('pred_')]
            preds = compact_raw(prediction_to_numpy(sample, sorted(tasks)))
            np.savez_compressed(osp.join(self.out_dir, f'{name}.npz'), **preds)
            self.written += 1
