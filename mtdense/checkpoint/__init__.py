"""Checkpoint files: reading them safely (``torch.load(weights_only=True)`` / safetensors,
:mod:`mtdense.checkpoint.reader`) and writing them crash-safe (temporary file, fsync,
rename, :mod:`mtdense.checkpoint.writer`, imported by the engine)."""
from .reader import (WRAPPERS, CheckpointMismatchError, CheckpointReadError,
                     CorruptCheckpointError, UnsafeCheckpointError, check_checkpoint_safe,
                     read_state_dict, safe_load, state_dict_from)

__all__ = ['CheckpointReadError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
           'CheckpointMismatchError', 'safe_load', 'check_checkpoint_safe', 'state_dict_from',
           'read_state_dict', 'WRAPPERS']
