"""Geometric transforms that keep the image and every task map aligned.

Each transform touches ``results['img']`` and every ``results['gt_<task>']`` with
``task`` in ``results['task_fields']`` (if no annotations are loaded yet, as in
the test pipeline, only the image). How a map is resampled, flipped, rotated, zoomed and
padded is its task's business (:mod:`mtdense.tasks`: labels nearest neighbour with 255
fills; depth valid-aware with 0 fills and divided by a zoom; normals valid-aware,
renormalised, flipped / rotated as vectors, the zero vector filling).

**Sizes are (h, w) everywhere** in mtdense: every ``scale``, ``crop_size`` and
``size`` argument of these transforms, ``img_shape``, ``ori_shape``, ``pad_shape``,
the data preprocessor's ``size`` and the arrays' own ``shape[:2]``. (Upstream mmcv's
``Resize``/``Pad`` take (w, h) while mmseg's ``RandomCrop`` takes (h, w); mixing the
two made a NYUD crop of (448, 576) meet a pad of (576, 448), so mtdense has one
order.) With ``keep_ratio=True`` a resize scale is order-free (long edge <=
``max(scale)``, short edge <= ``min(scale)``). ``img_shape`` is always the size of
the valid image content; ``MTPad`` records the padded size as ``pad_shape`` and
leaves ``img_shape`` unchanged, so predictions can be un-padded with ``img_shape``
and resized back to ``ori_shape``.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.image import rescale_size
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mtdense.registry import TRANSFORMS
from mtdense.tasks import IGNORE_INDEX, BaseTask, get_task
from mtdense.tasks import resampling as rs

#: resampling family -> a task of that family (the names earlier versions used)
_FAMILIES = {'label': 'semseg', 'depth': 'depth', 'normals': 'normals'}


def check_map(task: str, arr: np.ndarray) -> None:
    """Raise a clear error if ``arr`` is not a valid ground-truth array for ``task``."""
    get_task(task).check_map(arr)


def resize_map(arr: np.ndarray, family: str, size: Tuple[int, int]) -> np.ndarray:
    """Resize a map of a resampling family (``'label'``, ``'depth'``, ``'normals'``) to
    ``size = (h, w)``; tasks resize their maps with ``get_task(task).resize``."""
    return get_task(_FAMILIES[family]).resize(arr, size)


def rotate_normals(normals: np.ndarray, angle: float) -> np.ndarray:
    """Rotate normal vectors by ``angle`` degrees counter-clockwise about the z axis."""
    return get_task('normals').rotate_values(normals, angle)


def _task_maps(results: dict) -> List[Tuple[str, BaseTask]]:
    """``(task, definition)`` for every ground-truth map present, validating each."""
    pairs = []
    for task in results.get('task_fields', []):
        key = f'gt_{task}'
        if key not in results:
            raise KeyError(f'task {task!r} is listed in task_fields but results has no {key!r}')
        definition = get_task(task)
        definition.check_map(results[key])
        pairs.append((task, definition))
    return pairs


def _check_img(results: dict, where: str) -> np.ndarray:
    if 'img' not in results:
        raise KeyError(f'{where}: results has no "img"; put LoadMultiTaskImage first')
    return results['img']


def _check_aligned(results: dict, where: str) -> None:
    """All maps must share the image's size before a crop/flip/rotate/pad."""
    h, w = results['img'].shape[:2]
    for task, _ in _task_maps(results):
        mh, mw = results[f'gt_{task}'].shape[:2]
        if (mh, mw) != (h, w):
            raise ValueError(f'{where}: gt_{task} has size {(mh, mw)} but the image has {(h, w)}; '
                             'load annotations before geometric transforms that must keep '
                             'them aligned (only resizes may run before loading them)')


def _resize_results(results: dict, new_size: Tuple[int, int]) -> None:
    """Resize image and maps to ``new_size = (h, w)`` and update the meta."""
    img = results['img']
    h, w = img.shape[:2]
    new_h, new_w = int(new_size[0]), int(new_size[1])
    if new_w < 1 or new_h < 1:
        raise ValueError(f'resize target (h, w) = {(new_h, new_w)} is empty for an image of '
                         f'(h, w) = {(h, w)}')
    # Maps of the same size as the image move with it; maps at another size (the
    # test pipeline resizes the image before loading annotations) are an error
    # here because they would silently fall out of alignment.
    _check_aligned(results, 'MTResize')
    results['img'] = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    for task, definition in _task_maps(results):
        key = f'gt_{task}'
        results[key] = definition.resize(results[key], (new_h, new_w))
    w_scale, h_scale = new_w / w, new_h / h
    # scale_factor maps the original image onto the current one (composed over
    # several resizes), so predictions can always be brought back to ori_shape.
    old = results.get('scale_factor', (1.0, 1.0))
    results['scale_factor'] = (float(old[0]) * w_scale, float(old[1]) * h_scale)
    results['img_shape'] = (new_h, new_w)


def target_size(img_hw: Tuple[int, int], scale: Tuple[int, int], keep_ratio: bool
                ) -> Tuple[int, int]:
    """Output ``(h, w)`` of resizing an ``img_hw`` image for a ``scale = (h, w)`` request.

    ``keep_ratio``: mmcv's ``imrescale`` rule, long edge <= ``max(scale)`` and short
    edge <= ``min(scale)`` (so the order of ``scale`` does not matter); otherwise
    exactly ``scale``.
    """
    h, w = img_hw
    if keep_ratio:
        new_w, new_h = rescale_size((w, h), tuple(scale))
        return int(new_h), int(new_w)
    return int(scale[0]), int(scale[1])


def _as_pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f'{name} must be a positive int or a pair (h, w) of positive ints, '
                     f'got {value!r}')


@TRANSFORMS.register_module()
class MTResize(BaseTransform):
    """Resize the image and all task maps.

    Args:
        scale: target ``(h, w)`` (an int means square). With ``keep_ratio`` the image
            is rescaled so its long edge <= ``max(scale)`` and short edge <=
            ``min(scale)`` (mmcv's ``imrescale`` rule).
        keep_ratio: keep the aspect ratio.

    Updates ``img``, ``gt_<task>``, ``img_shape``, ``scale_factor`` (``(w, h)``
    ratio of current to original size, mmcv's convention for that key).
    """

    def __init__(self, scale: Union[int, Tuple[int, int]], keep_ratio: bool = True) -> None:
        self.scale = _as_pair(scale, 'MTResize.scale')
        self.keep_ratio = keep_ratio

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTResize')
        _resize_results(results, target_size(img.shape[:2], self.scale, self.keep_ratio))
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale={self.scale}, keep_ratio={self.keep_ratio})'


@TRANSFORMS.register_module()
class MTRandomResize(BaseTransform):
    """Resize to a random scale.

    Args:
        scale: base ``(h, w)`` when ``ratio_range`` is given, else a list of
            candidate ``(h, w)`` scales to choose from uniformly.
        ratio_range: ``(lo, hi)``: the target is ``scale * r`` with ``r ~ U(lo, hi)``
            (mmseg's ``RandomResize(ratio_range=...)``).
        keep_ratio: keep the aspect ratio (see :class:`MTResize`).
    """

    def __init__(self, scale: Union[Tuple[int, int], List[Tuple[int, int]]],
                 ratio_range: Optional[Tuple[float, float]] = None,
                 keep_ratio: bool = True) -> None:
        if ratio_range is not None:
            self.scales = [_as_pair(scale, 'MTRandomResize.scale')]
            lo, hi = (float(r) for r in ratio_range)
            if not 0 < lo <= hi:
                raise ValueError(f'MTRandomResize.ratio_range must satisfy 0 < lo <= hi, '
                                 f'got {ratio_range}')
            self.ratio_range: Optional[Tuple[float, float]] = (lo, hi)
        else:
            if not isinstance(scale, list) or not scale:
                raise ValueError('MTRandomResize needs ratio_range, or scale as a non-empty list '
                                 f'of (w, h) candidates; got scale={scale!r}')
            self.scales = [_as_pair(s, 'MTRandomResize.scale[i]') for s in scale]
            self.ratio_range = None
        self.keep_ratio = keep_ratio

    @cache_randomness
    def _random_scale(self) -> Tuple[int, int]:
        if self.ratio_range is not None:
            r = np.random.uniform(*self.ratio_range)
            h, w = self.scales[0]
            return max(1, int(h * r)), max(1, int(w * r))
        return self.scales[np.random.randint(len(self.scales))]

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTRandomResize')
        scale = self._random_scale()
        results['scale'] = scale
        _resize_results(results, target_size(img.shape[:2], scale, self.keep_ratio))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scales={self.scales}, ratio_range={self.ratio_range}, '
                f'keep_ratio={self.keep_ratio})')


@TRANSFORMS.register_module()
class MTRandomCrop(BaseTransform):
    """Randomly crop the image and all task maps to ``crop_size = (h, w)``.

    Images smaller than the crop are cropped to their own size along that axis
    (pad afterwards with :class:`MTPad`), as in mmseg's ``RandomCrop``.

    Args:
        crop_size: ``(h, w)`` (an int means square).
        cat_max_ratio: if < 1, re-draw the crop (up to 10 times) while a single
            class of ``cat_task`` covers more than this fraction of the crop's
            non-ignored pixels.
        cat_task: label task used for ``cat_max_ratio``.
        ignore_index: label ignored when counting classes.
    """

    def __init__(self, crop_size: Union[int, Tuple[int, int]], cat_max_ratio: float = 1.0,
                 cat_task: str = 'semseg', ignore_index: int = IGNORE_INDEX) -> None:
        self.crop_size = _as_pair(crop_size, 'MTRandomCrop.crop_size')
        if not 0 < cat_max_ratio <= 1:
            raise ValueError(f'MTRandomCrop.cat_max_ratio must be in (0, 1], got {cat_max_ratio}')
        self.cat_max_ratio = float(cat_max_ratio)
        self.cat_task = cat_task
        self.ignore_index = ignore_index

    @cache_randomness
    def _crop_box(self, hw: Tuple[int, int]) -> Tuple[int, int, int, int]:
        margin_h = max(hw[0] - self.crop_size[0], 0)
        margin_w = max(hw[1] - self.crop_size[1], 0)
        y0 = np.random.randint(0, margin_h + 1)
        x0 = np.random.randint(0, margin_w + 1)
        return y0, min(y0 + self.crop_size[0], hw[0]), x0, min(x0 + self.crop_size[1], hw[1])

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTRandomCrop')
        _check_aligned(results, 'MTRandomCrop')
        box = self._crop_box(img.shape[:2])
        if self.cat_max_ratio < 1:
            key = f'gt_{self.cat_task}'
            if key not in results:
                raise KeyError(f'MTRandomCrop(cat_max_ratio={self.cat_max_ratio}) balances '
                               f'classes of {self.cat_task!r}, but results has no {key!r} '
                               f'(tasks: {results.get("task_fields", [])})')
            for _ in range(10):
                y0, y1, x0, x1 = box
                labels, counts = np.unique(results[key][y0:y1, x0:x1], return_counts=True)
                counts = counts[labels != self.ignore_index]
                if len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio:
                    break
                box = self._crop_box(img.shape[:2])
        y0, y1, x0, x1 = box
        results['img'] = np.ascontiguousarray(img[y0:y1, x0:x1])
        for task, _ in _task_maps(results):
            key = f'gt_{task}'
            results[key] = np.ascontiguousarray(results[key][y0:y1, x0:x1])
        results['img_shape'] = (y1 - y0, x1 - x0)
        results['crop_box'] = (x0, y0, x1, y1)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.crop_size}, '
                f'cat_max_ratio={self.cat_max_ratio}, cat_task={self.cat_task!r})')


@TRANSFORMS.register_module()
class MTRandomFlip(BaseTransform):
    """Flip image and maps with probability ``prob``.

    Horizontal flips negate the normals' x component, vertical flips their y
    component. Records ``flip`` (bool) and ``flip_direction`` (str or None).
    """

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'MTRandomFlip.prob must be in [0, 1], got {prob}')
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'MTRandomFlip.direction must be "horizontal" or "vertical", '
                             f'got {direction!r}')
        self.prob = prob
        self.direction = direction

    @cache_randomness
    def _do_flip(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTRandomFlip')
        flip = self._do_flip()
        if flip:
            _check_aligned(results, 'MTRandomFlip')
            results['img'] = rs.flip_array(img, self.direction)
            for task, definition in _task_maps(results):
                key = f'gt_{task}'
                results[key] = definition.flip(results[key], self.direction)
            # A second flip undoes the first: record the net state.
            results['flip'] = not results.get('flip', False)
        else:
            results.setdefault('flip', False)
        results['flip_direction'] = self.direction if results['flip'] else None
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.direction!r})'


@TRANSFORMS.register_module()
class MTRandomRotate(BaseTransform):
    """Rotate (and optionally zoom) image and maps by a random angle with probability ``prob``.

    A positive angle rotates the content counter-clockwise on screen (OpenCV's
    convention); normal vectors are rotated by the same angle about the camera z
    axis (:func:`rotate_normals`). Regions rotated in from outside the image are
    ``pad_val`` in the image and invalid in every map.

    With ``zoom`` the same affine map also scales the content about the centre by
    ``s ~ U(lo, hi)`` on an unchanged canvas (the ASTMT / MTLoRA "ScaleNRotate"
    augmentation); depth is divided by ``s``, since content magnified ``s`` times
    looks ``s`` times closer.

    Args:
        prob: probability of rotating.
        degree: the angle is drawn from ``U(-degree, degree)``, or ``U(lo, hi)`` for
            a pair.
        pad_val: image fill value.
        seg_pad_val: label fill value.
        center: rotation centre ``(x, y)`` in pixels; default the image centre.
        auto_bound: enlarge the canvas so the whole rotated image fits (not with
            ``zoom``).
        zoom: ``(lo, hi)`` range of the zoom factor, or None (no zoom).

    Records ``rotate_angle`` (degrees, 0.0 when not rotated), ``zoom`` (1.0 when
    not zoomed) and ``img_shape``.
    """

    def __init__(self, prob: float, degree: Union[float, Tuple[float, float]],
                 pad_val: float = 0, seg_pad_val: int = IGNORE_INDEX,
                 center: Optional[Tuple[float, float]] = None, auto_bound: bool = False,
                 zoom: Optional[Tuple[float, float]] = None) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'MTRandomRotate.prob must be in [0, 1], got {prob}')
        if isinstance(degree, (int, float)):
            if degree < 0:
                raise ValueError(f'MTRandomRotate.degree must be >= 0, got {degree}')
            degree = (-float(degree), float(degree))
        elif len(degree) != 2 or degree[0] > degree[1]:
            raise ValueError(f'MTRandomRotate.degree must be a number or (lo, hi), got {degree}')
        if zoom is not None:
            if (not isinstance(zoom, (tuple, list)) or len(zoom) != 2
                    or not 0 < float(zoom[0]) <= float(zoom[1])):
                raise ValueError(f'MTRandomRotate.zoom must be (lo, hi) with 0 < lo <= hi, '
                                 f'got {zoom!r}')
            if auto_bound:
                raise ValueError('MTRandomRotate: zoom and auto_bound cannot be combined (zoom '
                                 'keeps the canvas, auto_bound grows it)')
            zoom = (float(zoom[0]), float(zoom[1]))
        self.prob = prob
        self.degree = (float(degree[0]), float(degree[1]))
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val
        self.center = center
        self.auto_bound = auto_bound
        self.zoom = zoom

    @cache_randomness
    def _random_params(self) -> Optional[Tuple[float, float]]:
        if np.random.rand() >= self.prob:
            return None
        angle = float(np.random.uniform(*self.degree))
        zoom = float(np.random.uniform(*self.zoom)) if self.zoom is not None else 1.0
        return angle, zoom

    def _matrix(self, hw: Tuple[int, int], angle: float, zoom: float
                ) -> Tuple[np.ndarray, Tuple[int, int]]:
        h, w = hw
        center = self.center if self.center is not None else ((w - 1) * 0.5, (h - 1) * 0.5)
        matrix = cv2.getRotationMatrix2D(tuple(float(c) for c in center), angle, zoom)
        if not self.auto_bound:
            return matrix, (w, h)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        new_w = int(np.round(h * sin + w * cos))
        new_h = int(np.round(h * cos + w * sin))
        matrix[0, 2] += (new_w - w) * 0.5
        matrix[1, 2] += (new_h - h) * 0.5
        return matrix, (new_w, new_h)

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTRandomRotate')
        params = self._random_params()
        if params is None:
            results.setdefault('rotate_angle', 0.0)
            results.setdefault('zoom', 1.0)
            return results
        angle, zoom = params
        _check_aligned(results, 'MTRandomRotate')
        matrix, size = self._matrix(img.shape[:2], angle, zoom)
        border = self.pad_val if isinstance(self.pad_val, (int, float)) else tuple(self.pad_val)
        results['img'] = cv2.warpAffine(img, matrix, size, flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        for task, definition in _task_maps(results):
            key = f'gt_{task}'
            out = definition.warp(results[key], matrix, size, fill=self.seg_pad_val)
            out = definition.rotate_values(out, angle)
            results[key] = definition.zoom_values(out, zoom)
        results['rotate_angle'] = float(results.get('rotate_angle', 0.0)) + angle
        results['zoom'] = float(results.get('zoom', 1.0)) * zoom
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, degree={self.degree}, '
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val}, '
                f'center={self.center}, auto_bound={self.auto_bound}, zoom={self.zoom})')


@TRANSFORMS.register_module()
class MTPad(BaseTransform):
    """Pad image and maps at the bottom/right.

    Fill values: image ``pad_val``, labels ``seg_pad_val`` (255), depth 0, normals
    the zero vector, i.e. padding is always invalid ground truth.

    Args:
        size: fixed output ``(h, w)``; the input must not be larger.
        size_divisor: pad each side up to a multiple of this.
        pad_val: image fill value.
        seg_pad_val: label fill value.

    Records ``pad_shape`` (padded ``(h, w)``); ``img_shape`` keeps the size of the
    valid content.
    """

    def __init__(self, size: Optional[Tuple[int, int]] = None,
                 size_divisor: Optional[int] = None, pad_val: float = 0,
                 seg_pad_val: int = IGNORE_INDEX) -> None:
        if (size is None) == (size_divisor is None):
            raise ValueError('MTPad needs exactly one of size or size_divisor, got '
                             f'size={size}, size_divisor={size_divisor}')
        self.size = _as_pair(size, 'MTPad.size') if size is not None else None
        if size_divisor is not None and (not isinstance(size_divisor, int) or size_divisor < 1):
            raise ValueError(f'MTPad.size_divisor must be a positive int, got {size_divisor!r}')
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def _padded_hw(self, hw: Tuple[int, int]) -> Tuple[int, int]:
        h, w = hw
        if self.size is not None:
            ph, pw = self.size
            if ph < h or pw < w:
                raise ValueError(f'MTPad(size={self.size}) is smaller than the image: sizes in '
                                 f'mtdense transforms are (h, w) and the image is (h, w) = '
                                 f'{(h, w)}; crop or resize it first, or check the order of '
                                 f'the size (a (w, h) size from mmcv configs must be swapped)')
            return ph, pw
        d = self.size_divisor
        return int(math.ceil(h / d)) * d, int(math.ceil(w / d)) * d

    @staticmethod
    def _pad(arr: np.ndarray, hw: Tuple[int, int], value) -> np.ndarray:
        h, w = arr.shape[:2]
        out = np.empty((hw[0], hw[1]) + arr.shape[2:], dtype=arr.dtype)
        out[...] = value
        out[:h, :w] = arr
        return out

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTPad')
        _check_aligned(results, 'MTPad')
        hw = self._padded_hw(img.shape[:2])
        pad_val = self.pad_val if isinstance(self.pad_val, (int, float)) else np.asarray(
            self.pad_val, dtype=img.dtype)
        results['img'] = self._pad(img, hw, pad_val)
        for task, definition in _task_maps(results):
            key = f'gt_{task}'
            results[key] = self._pad(results[key], hw, definition.pad_value(self.seg_pad_val))
        results['pad_shape'] = hw
        results.setdefault('img_shape', img.shape[:2])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, size_divisor={self.size_divisor}, '
                f'pad_val={self.pad_val}, seg_pad_val={self.seg_pad_val})')


__all__: List[str] = ['MTResize', 'MTRandomResize', 'MTRandomCrop', 'MTRandomFlip',
                      'MTRandomRotate', 'MTPad', 'check_map', 'resize_map', 'rotate_normals',
                      'target_size']
