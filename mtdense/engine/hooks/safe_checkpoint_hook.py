"""Make mmengine checkpoints loadable with ``torch.load(weights_only=True)``."""
from __future__ import annotations

from typing import Any, Optional

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


_RNG_KEY = 'mtdense_rng_state'


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Store only tensors and plain Python data in checkpoints (and restore on load).

    Pair with :func:`mtdense.engine.checkpoint.install_safe_checkpoint_loader`, which
    loads every local checkpoint with ``weights_only=True``. ``state_dict`` and
    ``optimizer`` hold tensors already and are left as they are.

    With ``save_rng_state`` (default) the checkpoint also holds the torch RNG state
    (CPU, and the current CUDA device's) under ``mtdense_rng_state``; a run resumed
    from it restores that state just before its first iteration, so stochastic
    layers (drop path, dropout) draw the same numbers as an uninterrupted run.
    mmengine 0.10.7 re-seeds on resume and replays the skipped batches through the
    dataloader, which reproduces the sampler order and the transforms' numpy draws
    (verified with ``num_workers=0``) but not the model's torch draws: without this,
    a resumed run with drop path diverges from the uninterrupted one. Skipped when
    ``randomness.diff_rank_seed`` is set (ranks then have different streams and only
    rank 0's is saved).

    Args:
        save_rng_state: save and restore the torch RNG state as described above.
    """

    priority = 'VERY_LOW'

    def __init__(self, save_rng_state: bool = True) -> None:
        self.save_rng_state = bool(save_rng_state)
        self._pending_rng: Optional[dict] = None

    @staticmethod
    def _diff_rank_seed(runner) -> bool:
        cfg = getattr(runner, 'cfg', None) or {}
        return bool((cfg.get('randomness', None) or {}).get('diff_rank_seed', False))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer'):
                checkpoint[key] = to_plain(checkpoint[key])
        if self.save_rng_state and 'iter' in checkpoint.get('meta', {}):
            checkpoint[_RNG_KEY] = dict(
                iter=int(checkpoint['meta']['iter']),
                cpu=torch.get_rng_state(),
                cuda=torch.cuda.get_rng_state() if torch.cuda.is_available() else None)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key not in ('state_dict', 'optimizer', _RNG_KEY):
                checkpoint[key] = from_plain(checkpoint[key])
        rng = checkpoint.get(_RNG_KEY)
        self._pending_rng = None
        if self.save_rng_state and rng is not None and not self._diff_rank_seed(runner):
            self._pending_rng = rng

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        rng, self._pending_rng = self._pending_rng, None
        # Only when this run continues exactly where the checkpoint was saved (a
        # resume), not when the checkpoint merely initialised the weights (load_from).
        if rng is None or runner.iter != rng['iter']:
            return
        torch.set_rng_state(rng['cpu'])
        if rng.get('cuda') is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng['cuda'])
