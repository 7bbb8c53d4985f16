from .checkpoint import (UnsafeCheckpointError, check_checkpoint_safe,
                         install_safe_checkpoint_loader, safe_load)
from .hooks import MultiTaskVisualizationHook, SafeCheckpointHook
from .peft_export import (BackboneMismatchError, PeftExportError, export_peft, load_peft,
                          read_peft)

# Every local checkpoint mtdense (or mmengine, once mtdense.engine is imported) loads goes
# through torch.load(weights_only=True); see mtdense/engine/checkpoint.py.
install_safe_checkpoint_loader()

__all__ = ['UnsafeCheckpointError', 'check_checkpoint_safe', 'install_safe_checkpoint_loader',
           'safe_load', 'SafeCheckpointHook', 'MultiTaskVisualizationHook',
           'BackboneMismatchError', 'PeftExportError', 'export_peft', 'load_peft', 'read_peft']
