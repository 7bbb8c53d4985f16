"""``MTDenseRunner``: mmengine's ``Runner`` with strict loading and crash-safe checkpoints.

mmengine loads ``load_from`` / ``resume`` checkpoints non-strictly and only logs the
keys that did not match, so a checkpoint of another model (other tasks, classes or
embedding width) was evaluated as a half-random model with exit status 0. Here a
checkpoint must match the model exactly (keys and shapes) unless the config sets
``load_strict = False`` (``--non-strict`` in the tools); the error names the file and
lists the differences (:func:`mtdense.engine.checkpoint.load_model_state`).

Checkpoints are written atomically and old ones deleted only after the new one is
complete (:class:`~mtdense.engine.hooks.AtomicCheckpointHook`, used for every
``CheckpointHook`` of a config), and ``--resume`` without a path skips a latest
checkpoint that is missing, empty, truncated or damaged, with a warning naming it,
and resumes from the newest complete one.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import Callable, List, Optional, Union

from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from mtdense.registry import RUNNERS
from .checkpoint import CorruptCheckpointError, load_model_state, model_state_from_checkpoint
from mtdense.checkpoint.writer import ATOMIC_BACKEND_ARGS, is_local_path, read_last_checkpoint
from .hooks.safe_checkpoint_hook import AtomicCheckpointHook

__all__ = ['MTDenseRunner', 'build_runner']


@RUNNERS.register_module()
class MTDenseRunner(Runner):
    """mmengine ``Runner`` whose checkpoint loading is strict by default.

    Config key ``load_strict`` (default True): False loads the matching keys of a
    ``load_from`` checkpoint and logs the missing / unexpected / mis-shaped ones.
    """

    load_strict: bool = True

    # --------------------------------------------------------------- saving
    def register_hook(self, hook: Union[Hook, dict], priority=None) -> None:
        """Register ``hook``; a ``CheckpointHook`` config becomes :class:`AtomicCheckpointHook`.

        mmengine's CheckpointHook deletes old checkpoints before the new one is written
        (see AtomicCheckpointHook); the replacement takes the same arguments.
        """
        if isinstance(hook, dict) and self._is_mmengine_checkpoint_hook(hook.get('type')):
            hook = dict(hook, type=AtomicCheckpointHook)
        elif type(hook) is CheckpointHook:
            self.logger.warning('a CheckpointHook instance was passed: its saves are not '
                                'crash-safe; pass a config dict to get AtomicCheckpointHook')
        super().register_hook(hook, priority)

    @staticmethod
    def _is_mmengine_checkpoint_hook(hook_type) -> bool:
        if hook_type is CheckpointHook:
            return True
        if isinstance(hook_type, str):
            return (MMENGINE_HOOKS.get(hook_type) is CheckpointHook
                    or hook_type in ('CheckpointHook', 'mmengine.CheckpointHook'))
        return False

    def save_checkpoint(self, out_dir: str, filename: str, file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True, save_param_scheduler: bool = True,
                        meta: Optional[dict] = None, by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """mmengine's ``save_checkpoint`` (rank 0), writing local files atomically.

        mmengine serialises the checkpoint in memory and hands the bytes to a file
        backend; for a local ``out_dir`` without explicit backend arguments that is
        :class:`~mtdense.checkpoint.writer.AtomicLocalBackend` (temporary file,
        fsync, rename; errors name the file).
        """
        if backend_args is None and file_client_args is None and is_local_path(out_dir):
            backend_args = dict(ATOMIC_BACKEND_ARGS)
        super().save_checkpoint(out_dir, filename, file_client_args=file_client_args,
                                save_optimizer=save_optimizer,
                                save_param_scheduler=save_param_scheduler, meta=meta,
                                by_epoch=by_epoch, backend_args=backend_args)

    # -------------------------------------------------------------- resuming
    def load_or_resume(self) -> None:
        """Load or resume; ``resume=True`` without ``load_from`` uses the newest valid checkpoint.

        mmengine resumes from whatever ``last_checkpoint`` names and fails on a
        missing, empty or truncated file. Here such a file is skipped with a warning
        naming it and what is wrong, and the newest complete checkpoint of the work dir
        is resumed instead (training starts from scratch if there is none, as with
        mmengine when no checkpoint exists). An explicit ``--resume CKPT`` and
        ``load_from`` are loaded as given: an error names the file. A checkpoint
        refused as unsafe is not skipped: it stops the run.
        """
        if self._has_loaded:
            return None
        if not (self._resume and self._load_from is None):
            return super().load_or_resume()
        for path in self.resume_candidates():
            try:
                # safe_load raises before anything of the runner changes
                self.resume(path)
            except (CorruptCheckpointError, FileNotFoundError) as e:
                reason = e.detail if isinstance(e, CorruptCheckpointError) else 'file not found'
                self.logger.warning(f'resume: skipping {path}: {reason}')
                continue
            self.logger.info(f'Auto resumed from the latest valid checkpoint {path}.')
            self._has_loaded = True
            return None
        self.logger.info(f'resume: no complete checkpoint in {self.work_dir}; training from '
                         'the start')

    def resume_candidates(self) -> List[str]:
        """Checkpoints to try when resuming, newest first.

        The file ``last_checkpoint`` names (if any), then the checkpoints named like
        the CheckpointHook's ``filename_tmpl`` (``iter_N.pth`` / ``epoch_N.pth``) in
        its directory and in the work dir, by decreasing N. Best-metric checkpoints
        (``best_*``) hold no optimizer state and are not candidates.
        """
        pointer = read_last_checkpoint(self.work_dir)
        pointer_file = osp.join(self.work_dir, 'last_checkpoint')
        if pointer is None and osp.isfile(pointer_file):
            self.logger.warning(f'resume: {pointer_file} is empty; looking for checkpoints in '
                                f'{self.work_dir}')
        dirs = [self.work_dir]
        if pointer is not None and is_local_path(pointer):
            dirs.insert(0, osp.dirname(osp.abspath(pointer)) if osp.dirname(pointer)
                        else self.work_dir)
        hook = next((h for h in self.hooks if isinstance(h, CheckpointHook)), None)
        tmpl = hook.filename_tmpl if hook is not None else 'iter_{}.pth'
        pattern = re.compile('^' + re.escape(tmpl).replace(r'\{\}', r'(\d+)') + '$')
        found = {}
        for directory in dirs:
            if not osp.isdir(directory):
                continue
            for name in os.listdir(directory):
                m = pattern.match(name)
                if m and osp.isfile(osp.join(directory, name)):
                    path = osp.abspath(osp.join(directory, name))
                    found.setdefault(path, int(m.group(1)))
        ordered = sorted(found, key=lambda p: found[p], reverse=True)
        if pointer is not None:
            first = osp.abspath(pointer) if is_local_path(pointer) else pointer
            ordered = [first] + [p for p in ordered if p != first]
        return ordered

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'MTDenseRunner':
        runner = super().from_cfg(cfg)
        runner.load_strict = bool(cfg.get('load_strict', True))
        return runner

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False, revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model (strictly unless ``load_strict`` is False).

        ``revise_keys`` is accepted for mmengine compatibility; the only revision
        applied is the removal of a DDP ``module.`` prefix.
        """
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        # mmengine's contract: hooks see the checkpoint before the model does
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state = model_state_from_checkpoint(checkpoint, filename)
        diff = load_model_state(model, state, filename, strict=strict or self.load_strict)
        if any(diff.values()):
            self.logger.warning(
                f'load_strict=False: {filename} loaded partially: '
                f'{len(diff["missing"])} missing keys keep their initial values '
                f'(first: {diff["missing"][:5]}), {len(diff["unexpected"])} unexpected keys '
                f'(first: {diff["unexpected"][:5]}) and {len(diff["mismatched"])} mis-shaped '
                f'keys (first: {diff["mismatched"][:3]}) were ignored')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` (default :class:`MTDenseRunner`) built from ``cfg``."""
    runner_cls = RUNNERS.get(cfg.get('runner_type', 'MTDenseRunner'))
    if runner_cls is None:
        raise KeyError(f'runner_type {cfg.get("runner_type")!r} is not a registered runner')
    return runner_cls.from_cfg(cfg)
