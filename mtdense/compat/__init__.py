"""Compatibility layers for the pinned OpenMMLab stack on current PyTorch."""
from .mmcv_ops import MMCVOpUnavailableError, has_compiled_mmcv_ops, install_mmcv_ops_standin

__all__ = ['MMCVOpUnavailableError', 'has_compiled_mmcv_ops', 'install_mmcv_ops_standin']
