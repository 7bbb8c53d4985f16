"""Make mmengine checkpoints loadable with ``torch.load(weights_only=True)``."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mtdense.registry import HOOKS

_HB_TAG = '__mtdense_history_buffer__'
_ND_TAG = '__mtdense_ndarray__'


def to_plain(obj: Any) -> Any:
    """Recursively replace HistoryBuffers, numpy arrays and numpy scalars by plain data."""
    if isinstance(obj, HistoryBuffer):
        logs, counts = obj.data
        return {_HB_TAG: True, 'log': torch.from_numpy(np.asarray(logs, dtype=np.float64).copy()),
                'count': torch.from_numpy(np.asarray(counts, dtype=np.float64).copy()),
                'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return [to_plain(v) for v in obj.tolist()]
        return {_ND_TAG: True, 'data': torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items()) if type(obj) is not dict \
            else {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain`."""
    if isinstance(obj, dict):
        if obj.get(_HB_TAG):
            return HistoryBuffer(obj['log'].numpy().tolist(), obj['count'].numpy().tolist(),
                                 max_length=obj['max_length'])
        if obj.get(_ND_TAG):
            return obj['data'].numpy()
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_plain(v) for v in obj)
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Store only tensors and plain Python data in checkpoints (and restore on load).

    Pair with :func:`mtdense.engine.checkpoint.install_safe_checkpoint_loader`, which
    loads every local checkpoint with ``weights_only=True``. ``state_dict`` and
    ``optimizer`` hold tensors already and are left as they are.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = from_plain(checkpoint[key])
