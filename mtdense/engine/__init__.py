from .checkpoint import (CheckpointMismatchError, CheckpointReadError, CorruptCheckpointError,
                         UnsafeCheckpointError, check_checkpoint_safe,
                         install_safe_checkpoint_loader, load_model_state,
                         model_state_from_checkpoint, safe_load)
from .hooks import AtomicCheckpointHook, MultiTaskVisualizationHook, SafeCheckpointHook
from .runner import MTDenseRunner, build_runner
from .peft_export import (BackboneMismatchError, PeftExportError, export_peft, load_peft,
                          read_peft)

# Every local checkpoint mtdense (or mmengine, once mtdense.engine is imported) loads goes
# through torch.load(weights_only=True); see mtdense/checkpoint/reader.py (the one reader).
install_safe_checkpoint_loader()

__all__ = ['CheckpointReadError', 'CorruptCheckpointError', 'AtomicCheckpointHook',
           'UnsafeCheckpointError', 'check_checkpoint_safe', 'install_safe_checkpoint_loader',
           'safe_load', 'SafeCheckpointHook', 'MultiTaskVisualizationHook',
           'BackboneMismatchError', 'PeftExportError', 'export_peft', 'load_peft', 'read_peft',
           'CheckpointMismatchError', 'load_model_state', 'model_state_from_checkpoint',
           'MTDenseRunner', 'build_runner']
