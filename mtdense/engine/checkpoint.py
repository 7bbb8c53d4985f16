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
from typing import Any, Callable, Optional, Union

import torch

__all__ = ['UnsafeCheckpointError', 'safe_load', 'check_checkpoint_safe',
           'install_safe_checkpoint_loader']


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
