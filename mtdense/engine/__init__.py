from .checkpoint import UnsafeCheckpointError, install_safe_checkpoint_loader, safe_load
from .hooks import MultiTaskVisualizationHook, SafeCheckpointHook

# Every local checkpoint mtdense (or mmengine, once mtdense.engine is imported) loads goes
# through torch.load(weights_only=True); see mtdense/engine/checkpoint.py.
install_safe_checkpoint_loader()

__all__ = ['UnsafeCheckpointError', 'install_safe_checkpoint_loader', 'safe_load',
           'SafeCheckpointHook', 'MultiTaskVisualizationHook']
