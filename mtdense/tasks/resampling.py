"""Resampling primitives for task maps (numpy / OpenCV), composed by the task definitions.

Three families cover the built-in tasks:

* labels: nearest neighbour (``INTER_NEAREST_EXACT``: the pixel-centre convention of
  bilinear, unlike OpenCV's ``INTER_NEAREST``, which shifts labels by up to a pixel);
* scalar maps with an invalid value 0 (depth): *valid-aware* bilinear — value × validity
  and validity are interpolated with one kernel and divided, so invalid zeros never
  bleed into valid pixels; which output pixels are valid follows the validity mask by
  nearest neighbour, so validity borders move exactly like label borders;
* vector maps with the zero vector invalid (normals): valid-aware per channel, then
  optionally renormalised to unit length (a vector whose interpolated length collapses,
  opposing vectors averaged, becomes invalid).

Sizes are ``(h, w)``; OpenCV's ``(w, h)`` appears only inside these functions.
"""
from __future__ import annotations

from typing import Callable, Tuple

import cv2
import numpy as np

# Interpolated validity below this is treated as "no valid neighbour" (avoids 0/0).
_MIN_WEIGHT = 1e-3
# Vectors whose interpolated length collapses (opposing vectors averaged) become invalid.
_MIN_NORM = 1e-3

__all__ = ['resize_nearest', 'resize_valid_aware', 'warp_nearest', 'warp_valid_aware',
           'flip_array', 'renormalise', 'valid_mask']


def valid_mask(arr: np.ndarray) -> np.ndarray:
    """Validity of a scalar (finite and > 0) or vector (finite, non-zero) map."""
    if arr.ndim == 2:
        return np.isfinite(arr) & (arr > 0)
    return np.isfinite(arr).all(axis=-1) & np.any(arr != 0, axis=-1)


def renormalise(vec: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Unit length where ``keep`` and the length does not collapse; zero elsewhere."""
    norm = np.linalg.norm(vec, axis=-1)
    keep = keep & (norm > _MIN_NORM)
    out = np.where(keep[..., None], vec / np.maximum(norm, _MIN_NORM)[..., None], 0)
    return out.astype(np.float32)


def _valid_aware(arr: np.ndarray, sample_linear: Callable, sample_nearest: Callable,
                 unit: bool) -> np.ndarray:
    valid = valid_mask(arr)
    validf = valid.astype(np.float32)
    vector = arr.ndim == 3
    weights = validf[..., None] if vector else validf
    values = np.where(valid[..., None] if vector else valid, arr, 0).astype(np.float32)
    num = sample_linear(values * weights)
    den = sample_linear(validf)
    keep = sample_nearest(valid.astype(np.uint8)).astype(bool) & (den > _MIN_WEIGHT)
    if not vector:
        return np.where(keep, num / np.maximum(den, _MIN_WEIGHT), 0).astype(np.float32)
    out = num / np.maximum(den, _MIN_WEIGHT)[..., None]
    if unit:
        return renormalise(out, keep)
    return np.where(keep[..., None], out, 0).astype(np.float32)


def resize_nearest(arr: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to ``hw = (h, w)`` (labels)."""
    return cv2.resize(arr, (int(hw[1]), int(hw[0])), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_valid_aware(arr: np.ndarray, hw: Tuple[int, int], unit: bool = False) -> np.ndarray:
    """Valid-aware bilinear resize to ``hw`` (scalar 0-invalid or vector zero-invalid maps);
    ``unit`` renormalises vectors."""
    wh = (int(hw[1]), int(hw[0]))

    def linear(x):
        return cv2.resize(x, wh, interpolation=cv2.INTER_LINEAR)

    def nearest(x):
        return cv2.resize(x, wh, interpolation=cv2.INTER_NEAREST_EXACT)

    return _valid_aware(arr, linear, nearest, unit)


def warp_nearest(arr: np.ndarray, matrix: np.ndarray, wh: Tuple[int, int],
                 fill: float) -> np.ndarray:
    """Affine warp (OpenCV 2x3 ``matrix``, output ``wh = (w, h)``) by nearest neighbour;
    pixels from outside the source get ``fill``."""
    return cv2.warpAffine(arr, matrix, tuple(int(v) for v in wh), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def warp_valid_aware(arr: np.ndarray, matrix: np.ndarray, wh: Tuple[int, int],
                     unit: bool = False) -> np.ndarray:
    """Affine warp, valid-aware; pixels from outside the source are invalid (0)."""
    size = tuple(int(v) for v in wh)

    def warp(x, flags):
        return cv2.warpAffine(x, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)

    return _valid_aware(arr, lambda x: warp(x, cv2.INTER_LINEAR),
                        lambda x: warp(x, cv2.INTER_NEAREST), unit)


def flip_array(arr: np.ndarray, direction: str) -> np.ndarray:
    """A contiguous copy of ``arr`` flipped ``'horizontal'`` or ``'vertical'``."""
    if direction == 'horizontal':
        return np.ascontiguousarray(arr[:, ::-1])
    if direction == 'vertical':
        return np.ascontiguousarray(arr[::-1])
    raise ValueError(f'flip direction must be "horizontal" or "vertical", got {direction!r}')
