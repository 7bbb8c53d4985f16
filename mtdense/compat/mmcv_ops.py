"""Pure-PyTorch stand-in for ``mmcv.ops`` when mmcv's compiled extension is absent.

``mmcv-lite`` ships the Python sources of ``mmcv.ops`` but not ``mmcv._ext``, so
``import mmcv.ops`` fails, and with it ``import mmseg.models`` (several mmseg
modules import ops at import time). When, and only when, the compiled extension
is missing we register a small module under ``sys.modules['mmcv.ops']`` that:

* implements the ops that are thin wrappers over PyTorch (``point_sample``,
  ``sigmoid_focal_loss``) with the same signatures and semantics, and
* provides every other op mmseg/mmengine import by name as a placeholder that
  raises :class:`MMCVOpUnavailableError` naming the op when it is *used*.

Installed files are never edited; a real compiled mmcv is left untouched.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ['MMCVOpUnavailableError', 'install_mmcv_ops_standin', 'has_compiled_mmcv_ops']

# Ops imported by name somewhere in mmseg 1.2.2 / mmengine 0.10.7 / mmcv.cnn.
_UNAVAILABLE_OPS = (
    'CrissCrossAttention', 'PSAMask', 'DeformConv2d', 'DeformConv2dPack',
    'ModulatedDeformConv2d', 'ModulatedDeformConv2dPack', 'SyncBatchNorm',
    'MultiScaleDeformableAttention', 'SigmoidFocalLoss', 'SoftmaxFocalLoss',
    'softmax_focal_loss', 'RoIAlign', 'roi_align', 'nms', 'batched_nms',
    'CARAFEPack', 'Correlation', 'DynamicScatter', 'Voxelization',
)


class MMCVOpUnavailableError(RuntimeError):
    """Raised when code uses an mmcv op that needs the compiled extension."""


def has_compiled_mmcv_ops() -> bool:
    """True if mmcv's compiled extension ``mmcv._ext`` can be found."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def _unavailable_message(name: str) -> str:
    return (f'mmcv.ops.{name} needs mmcv\'s compiled extension (mmcv._ext), which is '
            f'not installed (mmcv-lite provides only pure-Python parts). mtdense '
            f'provides pure-PyTorch versions of point_sample and sigmoid_focal_loss '
            f'only; choose a component that does not use {name}, or install a full '
            f'mmcv built for your torch.')


def _make_unavailable(name: str):
    def _raise(*args, **kwargs):
        raise MMCVOpUnavailableError(_unavailable_message(name))

    if name[0].isupper():
        # A class, so isinstance checks and subclassing at import time still work.
        return type(name, (torch.nn.Module,), {'__init__': _raise, '__module__': 'mmcv.ops'})
    _raise.__name__ = name
    return _raise


def _denormalize(points: torch.Tensor) -> torch.Tensor:
    """Map points from [0, 1] to grid_sample's [-1, 1]."""
    return points * 2.0 - 1.0


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Sample ``input`` (N, C, H, W) at normalised points (N, P, 2) or (N, Hg, Wg, 2)."""
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, _denormalize(points), align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                       alpha: float = 0.25, weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Sigmoid focal loss with mmcv's op semantics (``target`` holds class indices;
    index == num_classes means background)."""
    num_classes = input.size(1)
    one_hot = F.one_hot(target.long().clamp(max=num_classes), num_classes + 1)[:, :num_classes]
    one_hot = one_hot.type_as(input)
    p = input.sigmoid()
    pt = (1 - p) * one_hot + p * (1 - one_hot)
    w = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(input, one_hot, reduction='none') * w
    if weight is not None:
        loss = loss * weight.view(-1, 1)
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    if reduction == 'none':
        return loss
    raise ValueError(f'sigmoid_focal_loss: reduction must be mean|sum|none, got {reduction!r}')


def _build_module() -> types.ModuleType:
    mod = types.ModuleType('mmcv.ops', doc='mtdense pure-PyTorch stand-in for mmcv.ops')
    mod.__mtdense_standin__ = True
    mod.point_sample = point_sample
    mod.sigmoid_focal_loss = sigmoid_focal_loss
    mod.MMCVOpUnavailableError = MMCVOpUnavailableError
    for name in _UNAVAILABLE_OPS:
        setattr(mod, name, _make_unavailable(name))

    def __getattr__(name: str):  # clear message for any op we do not list
        if name.startswith('__'):
            raise AttributeError(name)
        raise AttributeError(_unavailable_message(name))

    mod.__getattr__ = __getattr__
    return mod


def install_mmcv_ops_standin() -> bool:
    """Register the stand-in if mmcv's compiled ops are absent.

    Returns True if the stand-in is (now) active, False if real ops are used.
    """
    existing = sys.modules.get('mmcv.ops')
    if existing is not None:
        return bool(getattr(existing, '__mtdense_standin__', False))
    if importlib.util.find_spec('mmcv') is None or has_compiled_mmcv_ops():
        return False
    import mmcv
    mod = _build_module()
    sys.modules['mmcv.ops'] = mod
    mmcv.ops = mod
    return True
