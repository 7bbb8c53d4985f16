"""``BaseTask`` and the three map families every built-in task derives from.

A task definition owns everything task-specific: its ground truth (dtype, invalid value,
shape), how its maps are resampled, flipped, rotated and zoomed, its default loss and
weight, its head's output channels, how a head output becomes a prediction, its metric
statistics (primary metric and direction) and its colourisation. Datasets, transforms,
the data preprocessor, the model, the metric and the visualiser ask the definition.

Definitions do not import the layers that use them (no import cycle): the metric passes
its statistics classes (``factories``) to :meth:`BaseTask.new_stats`, the visualiser its
colour functions to :meth:`BaseTask.colorize`; a task names the one it uses
(``stats_type``, ``colorizer``) or overrides the method.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import resampling as rs

IGNORE_INDEX = 255

__all__ = ['BaseTask', 'LabelTask', 'ScalarTask', 'VectorTask', 'IGNORE_INDEX']


class BaseTask:
    """One dense task; subclasses set the class attributes and override what differs."""

    #: registered name (clones such as ``semseg_2`` resolve to it)
    name: str = ''
    #: a short description of the family (documentation only; nothing branches on it)
    kind: str = ''
    #: head output channels; None: the number of classes of the dataset
    num_channels: Optional[int] = None
    #: a classification of pixels into classes (num_classes, class names, per-class IoU)
    has_classes: bool = False
    #: names of the classes when the task fixes them (else the dataset's)
    class_names: Optional[Tuple[str, ...]] = None
    primary_metric: str = ''
    higher_is_better: bool = True
    default_loss: Dict[str, Any] = {}
    default_loss_weight: float = 1.0
    #: ground-truth value of invalid / ignored pixels, also what padding writes
    invalid_value: float = 0.0
    #: None: (H, W) maps; k: (H, W, k)
    gt_channels: Optional[int] = None
    gt_dtype: Any = np.float32
    #: names in ``mtdense.evaluation.functional.STATS`` / ``mtdense.visualization.COLORIZERS``
    stats_type: str = ''
    colorizer: str = ''
    #: generic file layout for datasets that have no reader for the task:
    #: ``(folder, suffix, decoder)`` -> ``<data_root>/<folder>/<id><suffix>``
    default_layout: Optional[Tuple[str, str, str]] = None

    # ------------------------------------------------------------- channels
    def out_channels(self, num_classes: Optional[int] = None) -> int:
        """Channels of the head output."""
        if self.num_channels is not None:
            return self.num_channels
        if num_classes is None:
            raise ValueError(f'task {self.name!r} needs num_classes (from the dataset metainfo)')
        return int(num_classes)

    # --------------------------------------------------------- ground truth
    def check_map(self, arr: Any, where: str = '') -> None:
        """Raise a clear error if ``arr`` is not a ground-truth array of this task."""
        prefix = f'{where}gt_{self.name}'
        if not isinstance(arr, np.ndarray):
            raise TypeError(f'{prefix}: expected a numpy array, got {type(arr).__name__}')
        if self.gt_channels is None and arr.ndim != 2:
            raise ValueError(f'{prefix}: expected an (H, W) map, got shape {arr.shape}')
        if self.gt_channels is not None and (arr.ndim != 3 or arr.shape[2] != self.gt_channels):
            raise ValueError(f'{prefix}: expected an (H, W, {self.gt_channels}) map, got shape '
                             f'{arr.shape}')

    def as_dtype(self, arr: np.ndarray, path: str) -> np.ndarray:
        """The decoded map in the task's dtype; anything that does not fit is an error."""
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f'{path}: task {self.name!r} expects a float map, got {arr.dtype}')
        if not np.isfinite(arr).all():
            raise ValueError(f'{path}: task {self.name!r} map has NaN/inf values; the convention '
                             'is NaN-free maps with an explicit invalid value')
        return arr.astype(np.float32, copy=False)

    def to_tensor(self, arr: np.ndarray) -> Tensor:
        """Packed ground truth: (C, H, W)."""
        data = torch.from_numpy(np.ascontiguousarray(arr.astype(np.float32)))
        return data[None] if arr.ndim == 2 else data.permute(2, 0, 1).contiguous()

    def to_numpy(self, data: Tensor) -> np.ndarray:
        """A packed (C, H, W) prediction or ground truth as (H, W) or (H, W, C) numpy."""
        arr = data.detach().cpu().numpy()
        return arr[0] if self.gt_channels is None else arr.transpose(1, 2, 0)

    def random_target(self, h: int, w: int, generator: Optional[torch.Generator] = None,
                      num_classes: Optional[int] = None) -> Tensor:
        """A random valid packed (C, H, W) ground truth, as :meth:`to_tensor` gives (for
        timing and smoke tests: no invalid pixels)."""
        raise NotImplementedError(f'task {self.name!r} has no random_target')

    def value_warnings(self, arr: np.ndarray, entry: Mapping[str, Any]) -> List[str]:
        """Values that decode but look like another unit or encoding (dataset checks);
        ``entry`` is the sample's annotation entry (path, decoder, ...)."""
        return []

    # ------------------------------------------------------------- geometry
    def resize(self, arr: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def warp(self, arr: np.ndarray, matrix: np.ndarray, wh: Tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def flip(self, arr: np.ndarray, direction: str) -> np.ndarray:
        return rs.flip_array(arr, direction)

    def rotate_values(self, arr: np.ndarray, angle: float) -> np.ndarray:
        """Values after the content rotated ``angle`` degrees (positions are warped already)."""
        return arr

    def zoom_values(self, arr: np.ndarray, zoom: float) -> np.ndarray:
        """Values after the content was magnified ``zoom`` times about the centre."""
        return arr

    def pad_value(self, label_pad: float = IGNORE_INDEX) -> float:
        return self.invalid_value

    # ---------------------------------------------------------------- model
    def activate(self, out: Tensor, model: Any = None) -> Tensor:
        """Output activation applied before the loss and the prediction (default: none)."""
        return out

    def predictions(self, out: Tensor, model: Any = None) -> Dict[str, Tensor]:
        """``{'pred': prediction, <field>: ...}`` from one sample's (C, H, W) head output."""
        raise NotImplementedError

    def predictions_in_place(self, out: Tensor, model: Any = None) -> Dict[str, Tensor]:
        """:meth:`predictions` when ``out`` belongs to the caller's call alone (no autograd,
        not a view of anything returned): the activation may overwrite it instead of
        allocating another full-resolution map. Same values; default: :meth:`predictions`."""
        return self.predictions(out, model)

    def unflip_values(self, out: Tensor, dims) -> Tensor:
        """Values of a (1, C, H, W) output whose positions were just flipped back along
        ``dims`` (2: vertical, 3: horizontal)."""
        return out

    # ----------------------------------------------------------- evaluation
    def stats_options(self, options: Mapping[str, Any]) -> Dict[str, Any]:
        """Keyword arguments of the statistics class from the metric's options."""
        return {}

    def new_stats(self, factories: Mapping[str, Any], options: Mapping[str, Any]):
        """An empty accumulator of this task's metric statistics."""
        return factories[self.stats_type](**self.stats_options(options))

    def update_stats(self, stats: Any, pred: Any, gt: Any) -> None:
        """Add one sample's prediction and ground truth, both in the packed (C, H, W) layout."""
        stats.update(pred, gt)

    # -------------------------------------------------------- visualisation
    def colorize(self, data: Any, colorizers: Mapping[str, Any],
                 options: Mapping[str, Any]) -> np.ndarray:
        """RGB uint8 rendering; ``options`` are the visualiser's (palette, cmaps, ranges)."""
        return colorizers[self.colorizer](data)

    def shared_range(self, gt: Any, pred: Any) -> Optional[Tuple[float, float]]:
        """A value range GT and prediction panels share (None: each its own)."""
        return None


class LabelTask(BaseTask):
    """Class-label maps: uint8 (H, W), 255 ignored, nearest-neighbour resampling."""

    kind = 'seg'
    has_classes = True
    invalid_value = float(IGNORE_INDEX)
    gt_dtype = np.uint8
    default_loss = dict(type='SegCrossEntropyLoss')
    stats_type = 'SegStats'
    colorizer = 'labels'

    def as_dtype(self, arr: np.ndarray, path: str) -> np.ndarray:
        if arr.dtype == np.uint8:
            return arr
        if np.issubdtype(arr.dtype, np.integer) and (arr.size == 0 or (
                arr.min() >= 0 and arr.max() <= 255)):
            return arr.astype(np.uint8)
        raise ValueError(f'{path}: task {self.name!r} expects uint8 labels in 0..255, got '
                         f'{arr.dtype}' + (f' in [{arr.min()}, {arr.max()}]' if arr.size else ''))

    def to_tensor(self, arr: np.ndarray) -> Tensor:
        return torch.from_numpy(arr.astype(np.int64))[None]

    def random_target(self, h, w, generator=None, num_classes=None):
        # classes: 0..C-1; without classes (saliency, edge): {0, 1}
        high = self.out_channels(num_classes) if self.has_classes else 2
        return torch.randint(0, high, (1, h, w), generator=generator)

    def resize(self, arr, hw):
        return rs.resize_nearest(arr, hw)

    def warp(self, arr, matrix, wh, fill: Optional[float] = None):
        return rs.warp_nearest(arr, matrix, wh, int(self.invalid_value if fill is None else fill))

    def pad_value(self, label_pad: float = IGNORE_INDEX) -> float:
        return label_pad

    def predictions(self, out, model=None):
        return {'pred': out.argmax(dim=0, keepdim=True).long(), 'logits': out}

    def stats_options(self, options):
        return dict(num_classes=options['num_classes'], ignore_index=options['ignore_index'],
                    nan_to_zero=options['nan_to_zero'])

    def colorize(self, data, colorizers, options):
        return colorizers['labels'](data, options.get('palette'))


class ScalarTask(BaseTask):
    """Scalar maps: float32 (H, W), 0 invalid, valid-aware bilinear resampling."""

    def random_target(self, h, w, generator=None, num_classes=None):
        return 0.5 + 9.5 * torch.rand(1, h, w, generator=generator)  # valid: > 0

    def resize(self, arr, hw):
        return rs.resize_valid_aware(arr, hw)

    def warp(self, arr, matrix, wh, fill: Optional[float] = None):
        return rs.warp_valid_aware(arr, matrix, wh)


class VectorTask(BaseTask):
    """Vector maps: float32 (H, W, C), the zero vector invalid, valid-aware resampling;
    ``unit`` vectors are renormalised, and flips negate the flipped axis' component."""

    gt_channels = 3
    #: renormalise to unit length after resampling
    unit = True
    #: component negated by a horizontal / vertical flip (None: none)
    flip_components = {'horizontal': 0, 'vertical': 1}

    def random_target(self, h, w, generator=None, num_classes=None):
        v = torch.randn(self.gt_channels, h, w, generator=generator)
        return v / v.norm(dim=0, keepdim=True).clamp(min=1e-6) if self.unit else v

    def resize(self, arr, hw):
        return rs.resize_valid_aware(arr, hw, unit=self.unit)

    def warp(self, arr, matrix, wh, fill: Optional[float] = None):
        return rs.warp_valid_aware(arr, matrix, wh, unit=self.unit)

    def flip(self, arr, direction):
        out = rs.flip_array(arr, direction)
        comp = self.flip_components.get(direction)
        if comp is not None:
            out[..., comp] *= -1
        return out

    def unflip_values(self, out, dims):
        sign = out.new_ones(out.shape[1])
        for dim, direction in ((3, 'horizontal'), (2, 'vertical')):
            comp = self.flip_components.get(direction)
            if dim in dims and comp is not None:
                sign[comp] = -1
        return out * sign.view(1, -1, 1, 1)

    def predictions(self, out, model=None):
        return {'pred': F.normalize(out, p=2, dim=0) if self.unit else out}

    def predictions_in_place(self, out, model=None):
        if self.unit:  # F.normalize's own arithmetic: x / max(||x||, eps)
            out = out.div_(out.norm(2, 0, keepdim=True).clamp_min(1e-12))
        return {'pred': out}

    def update_stats(self, stats, pred, gt):
        stats.update(pred, gt, channel_axis=0)  # vectors along the first axis when packed
