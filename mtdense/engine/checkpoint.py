"""Checkpoint loading that never unpickles arbitrary objects.

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
  files by :func:`safe_load`, which uses ``weights_only=True`` (and reads
  ``.safetensors``). A file that needs anything else fails with
  :class:`UnsafeCheckpointError` naming the file and the refused global.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, Dict, Optional, Union

import torch

__all__ = ['UnsafeCheckpointError', 'safe_load', 'check_checkpoint_safe',
           'install_safe_checkpoint_loader', 'CheckpointMismatchError',
           'model_state_from_checkpoint', 'compare_state', 'load_model_state']


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs objects outside the safe (weights-only) set."""


def safe_load(filename: Union[str, os.PathLike],
              map_location: Optional[Union[str, torch.device, Callable]] = 'cpu') -> Any:
    """Load a checkpoint without executing pickled code.

    ``.safetensors`` files are read with safetensors; everything else with
    ``torch.load(weights_only=True)``.
    """
    filename = os.fspath(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    if filename.endswith('.safetensors'):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
        return load_file(filename, device=str(device))
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f'refused to load {filename}: it contains objects outside the weights-only safe '
            f'set, and loading them could run arbitrary code. Only load such a file if you '
            f'trust it, with torch.load(..., weights_only=False) yourself. Details: '
            f'{_refusal_detail(e)}') from e


def _refusal_detail(err: Exception) -> str:
    """The informative line of torch's weights-only error (the refused global)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    # torch's message is: a generic paragraph, the specific reason, a link to the docs
    for ln in lines:
        if 'GLOBAL' in ln or 'Unsupported' in ln or 'unsupported' in ln:
            return ln
    return lines[-1] if lines else repr(err)


def check_checkpoint_safe(filename: Union[str, os.PathLike]) -> None:
    """Raise :class:`UnsafeCheckpointError` if ``filename`` needs unsafe globals.

    Lets tools fail before building models and dataloaders. For torch's zip format
    only the pickle opcodes are scanned (nothing is unpickled and no tensor data is
    read); legacy files are checked by :func:`safe_load` itself.
    """
    filename = os.fspath(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    if filename.endswith('.safetensors'):
        return  # tensors and string metadata only, by construction
    if not zipfile.is_zipfile(filename):
        safe_load(filename)
        return
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    if unsafe:
        raise UnsafeCheckpointError(
            f'refused to load {filename}: it references {unsafe[:5]}, outside the weights-only '
            f'safe set; unpickling it could run arbitrary code. Only load such a file if you '
            f'trust it, with torch.load(..., weights_only=False) yourself.')


def _load_from_local_safe(filename: str, map_location=None) -> Any:
    filename = osp.expanduser(filename)
    return safe_load(filename, map_location=map_location)


def install_safe_checkpoint_loader() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`safe_load`."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local_safe, force=True)


# ------------------------------------------------------------------ model checkpoints
class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model it is loaded into."""


#: keys listed per category in a mismatch message before "... and N more"
_MAX_LISTED = 20


def _listing(title: str, items: list) -> str:
    shown = '\n'.join(f'    {x}' for x in items[:_MAX_LISTED])
    more = f'\n    ... and {len(items) - _MAX_LISTED} more' if len(items) > _MAX_LISTED else ''
    return f'  {title} ({len(items)}):\n{shown}{more}'


def model_state_from_checkpoint(ckpt: Any, source: str) -> dict:
    """The model state dict of a loaded checkpoint: ``ckpt['state_dict']`` (mmengine) or the
    dict itself, with a ``module.`` prefix of DDP-wrapped models removed."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(
            f'{source}: not a model checkpoint: expected a state dict of tensors or a dict with '
            f"a 'state_dict' entry (as tools/train.py writes), got {type(ckpt).__name__}"
            + (f' with keys {sorted(ckpt)[:10]}' if isinstance(ckpt, dict) else ''))
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


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
