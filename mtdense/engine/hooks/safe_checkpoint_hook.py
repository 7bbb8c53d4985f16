"""Checkpoint hooks: loadable with ``torch.load(weights_only=True)``
(:class:`SafeCheckpointHook`) and written crash-safely (:class:`AtomicCheckpointHook`)."""
from __future__ import annotations

import hashlib
import os.path as osp
import pickle
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import is_main_process, master_only
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

from mtdense.registry import HOOKS
from mtdense.checkpoint.writer import (ATOMIC_BACKEND_ARGS, atomic_torch_save, is_local_path,
                             remove_stale_temp_files, write_last_checkpoint)

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


# ----------------------------------------------------------------- crash-safe saving
class _DeferredRemovals:
    """A file backend proxy that records ``remove`` / ``rmtree`` instead of running them.

    Lets :meth:`AtomicCheckpointHook._save_best_checkpoint` reuse mmengine's selection
    of the best checkpoint, which deletes the previous best *before* writing the new
    one; the recorded removals run after the new file is complete.
    """

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[Tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path: str) -> None:
        self.pending.append(('rmtree', path))

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that never loses the last complete checkpoint.

    mmengine 0.10.7 deletes the checkpoint beyond ``max_keep_ckpts`` (and the previous
    best one) *before* writing the new one, writes files in place and rewrites
    ``last_checkpoint`` in place: with ``max_keep_ckpts=1`` a crash during the save
    left a partial file, a pointer to a deleted one, and nothing to resume from.
    Here, for the interval / last / best checkpoints alike:

    1. the checkpoint is written atomically (temporary file in the same directory,
       fsync, rename: :mod:`mtdense.checkpoint.writer`);
    2. ``last_checkpoint`` is then replaced atomically the same way;
    3. only then are outdated checkpoints deleted. The saved ``keep_ckpt_ids`` still
       lists them, so a run killed between 2 and 3 deletes them when resumed
       (``CheckpointHook.before_train`` prunes that list to ``max_keep_ckpts``).

    Write errors (disk full, permissions) name the file and remove the partial
    temporary file; temporary files of killed writers are removed at
    ``before_train``. Saving stays on rank 0 (``Runner.save_checkpoint`` is
    ``master_only``). :class:`~mtdense.engine.runner.MTDenseRunner` uses this hook
    wherever a config asks for ``CheckpointHook``. Accepts the same arguments.
    """

    def before_train(self, runner) -> None:
        # Local directories write through the atomic backend (also with a plain
        # mmengine Runner, whose save_checkpoint passes the hook's backend_args on).
        if (self.backend_args is None and self.file_client_args is None
                and is_local_path(self.out_dir or runner.work_dir)):
            self.backend_args = dict(ATOMIC_BACKEND_ARGS)
        super().before_train(runner)
        if is_main_process():
            for directory in {self.out_dir, runner.work_dir}:
                if is_local_path(directory):
                    for path in remove_stale_temp_files(directory):
                        runner.logger.info(f'removed {path}, left by a save that was '
                                           'interrupted')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # mmengine's bookkeeping of the kept checkpoints, but with the removal last
        stale = []
        if self.max_keep_ckpts > 0:
            if not (len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    stale.append(self.keep_ckpt_ids.popleft())
                self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', stale + list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
            meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        if not is_main_process():
            return
        write_last_checkpoint(runner.work_dir, self.last_ckpt)
        for old in stale:
            self._remove(self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        real_backend = self.file_backend
        deferred = _DeferredRemovals(real_backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = real_backend
        # reached only if the new best (and the re-saved latest) checkpoint is complete
        keep = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
        for _, path in deferred.pending:
            if path not in keep:
                self._remove(path)

    @master_only
    def _publish_model(self, runner, ckpt_path: str) -> None:
        # mmengine's, with an atomic write (it calls save_checkpoint without backend_args)
        checkpoint = _load_checkpoint(ckpt_path)
        assert self.published_keys is not None
        removed_keys = [key for key in list(checkpoint) if key not in self.published_keys]
        for key in removed_keys:
            checkpoint.pop(key)
        if removed_keys:
            runner.logger.info(f'Key {removed_keys} will be removed because they are not found '
                               f'in published_keys. If you want to keep them, please set '
                               f'`{removed_keys}` in published_keys')
        sha = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()
        final_path = osp.splitext(ckpt_path)[0] + f'-{sha[:8]}.pth'
        atomic_torch_save(checkpoint, final_path)
        runner.logger.info(f'The checkpoint ({ckpt_path}) is published to {final_path}.')

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
            self.file_backend.rmtree(path)
