"""Checkpoints in the engine: mmengine's loader made safe, and strict model loading.

torch >= 2.6 defaults ``torch.load`` to ``weights_only=True``; mmengine 0.10.7 calls
``torch.load`` without the argument, so its resumable checkpoints (which pickle
``HistoryBuffer`` objects and numpy arrays in the message hub) no longer load,
while passing ``weights_only=False`` would execute whatever a file contains.

mtdense takes the safe road on both ends:

* :class:`~mtdense.engine.hooks.SafeCheckpointHook` converts everything that is not
  a tensor or a plain container/scalar into plain data before a checkpoint is saved
  and rebuilds it after loading, so our checkpoints are loadable with
  ``weights_only=True``;
* :func:`install_safe_checkpoint_loader` replaces mmengine's loader for local
  files by the one reader, :func:`mtdense.checkpoint.safe_load` (re-exported here
  with its errors :class:`CheckpointReadError`, :class:`UnsafeCheckpointError`,
  :class:`CorruptCheckpointError`).

:func:`load_model_state` loads a state dict into a model strictly (or reports the
differences), naming the checkpoint.
"""
import os.path as osp
from typing import Any, Dict

import torch

from mtdense.checkpoint import (CheckpointMismatchError, CheckpointReadError,
                                CorruptCheckpointError, UnsafeCheckpointError,
                                check_checkpoint_safe, safe_load, state_dict_from)

__all__ = ['CheckpointReadError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
           'safe_load', 'check_checkpoint_safe', 'install_safe_checkpoint_loader',
           'CheckpointMismatchError', 'model_state_from_checkpoint', 'compare_state',
           'load_model_state']


def _load_from_local_safe(filename: str, map_location=None) -> Any:
    filename = osp.expanduser(filename)
    return safe_load(filename, map_location=map_location)


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`safe_load`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local_safe, force=True)


# ------------------------------------------------------------------ model checkpoints
#: keys listed per category in a mismatch message before "... and N more"
_MAX_LISTED = 20


def _listing(title: str, items: list) -> str:
    shown = '\n'.join(f'    {x}' for x in items[:_MAX_LISTED])
    more = f'\n    ... and {len(items) - _MAX_LISTED} more' if len(items) > _MAX_LISTED else ''
    return f'  {title} ({len(items)}):\n{shown}{more}'


def model_state_from_checkpoint(ckpt: Any, source: str) -> dict:
    """The model state dict of a loaded checkpoint (see :func:`mtdense.checkpoint.state_dict_from`)."""
    return state_dict_from(ckpt, source)


def compare_state(model: torch.nn.Module, state: dict) -> Dict[str, list]:
    """``missing`` / ``unexpected`` keys and ``mismatched`` shapes of ``state`` vs ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    return dict(missing=missing, unexpected=unexpected, mismatched=mismatched)


def load_model_state(model: torch.nn.Module, state: dict, source: str,
                     strict: bool = True) -> Dict[str, list]:
    """Load ``state`` into ``model``; with ``strict`` any difference is an error.

    The error names the checkpoint and lists missing, unexpected and mis-shaped keys
    (at most 20 of each, then a count). Without ``strict`` the matching keys are
    loaded, the rest keep the model's values, and the differences are returned (the
    caller reports them).
    """
    diff = compare_state(model, state)
    if strict and any(diff.values()):
        parts = [_listing(title, diff[key]) for key, title in
                 (('missing', 'missing in the checkpoint'),
                  ('unexpected', 'in the checkpoint but not in the model'),
                  ('mismatched', 'different shapes')) if diff[key]]
        raise CheckpointMismatchError(
            f'{source} does not match the model ({type(model).__name__}):\n' + '\n'.join(parts)
            + '\nThe checkpoint was saved from another model (tasks, classes, architecture or '
              'method differ). Load it with the config it was trained with, or pass '
              '--non-strict (tools) / strict=False to load only the matching keys.')
    bad = {k.split(':')[0] for k in diff['mismatched']}
    model.load_state_dict({k: v for k, v in state.items() if k not in bad}, strict=False)
    return diff
