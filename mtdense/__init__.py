"""mtdense: parameter-efficient multi-task dense scene understanding on OpenMMLab."""
from .compat.mmcv_ops import install_mmcv_ops_standin as _install_mmcv_ops_standin
from .version import __version__

# Must run before anything imports mmseg.models (see mtdense/compat/mmcv_ops.py).
_install_mmcv_ops_standin()

__all__ = ['__version__']
