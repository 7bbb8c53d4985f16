"""A predicted data sample as numpy arrays, and their compact storage form."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from mtdense.tasks import get_task

__all__ = ['prediction_to_numpy', 'compact_raw']


def prediction_to_numpy(data_sample, tasks: Sequence[str]) -> Dict[str, np.ndarray]:
    """``{task: array}`` from a predicted data sample, in each task's layout: labels
    (H, W) int64, saliency / edge (H, W) float32 probability, normals (H, W, 3) float32,
    depth (H, W) float32 metres."""
    return {task: get_task(task).to_numpy(data_sample.get_pred(task).data) for task in tasks}


def compact_raw(preds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Raw outputs for storage: integer labels as uint8 (uint16 beyond 255), maps float16."""
    out = {}
    for task, arr in preds.items():
        if np.issubdtype(arr.dtype, np.integer):
            out[task] = arr.astype(np.uint8 if arr.max(initial=0) < 256 else np.uint16)
        else:
            out[task] = arr.astype(np.float16)
    return out
