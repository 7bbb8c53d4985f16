"""Decoders of images and of per-pixel maps stored as PNG / .npy."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from mtdense.tasks import HUMAN_PARTS_CLASSES

from .core import (DataFileError, _check_jpeg_complete, _check_label_range, _load_mat, _load_npy,
                   _read_label_2d, _require_file, _unit_normals, read_binary_png,
                   register_decoder)


@register_decoder('image')
def decode_image(path: str) -> np.ndarray:
    """RGB uint8 (H, W, 3). Grey images are expanded to 3 channels.

    EXIF orientation is deliberately ignored: the dense label files are stored in
    the raw pixel grid of the JPEG, so rotating only the image would misalign them.
    """
    path = _require_file(path, 'image')
    img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DataFileError(f'{path}: cannot decode the image (corrupt file or unsupported '
                            f'format)')
    _check_jpeg_complete(path)  # decodable, but maybe cut short
    if img.dtype != np.uint8:
        raise DataFileError(f'{path}: expected an 8-bit image, got dtype {img.dtype}')
    return np.ascontiguousarray(img[..., ::-1])


@register_decoder('image_exif')
def decode_image_exif(path: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) as displayed: the EXIF orientation is applied (a portrait phone
    photo comes out upright). Used for inference inputs, which have no label files to keep
    aligned; dataset readers use ``image`` (the stored pixel grid)."""
    path = _require_file(path, 'image')
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # OpenCV applies the EXIF orientation by default
    if img is None:
        raise DataFileError(f'{path}: cannot decode the image (corrupt file or unsupported '
                            f'format)')
    _check_jpeg_complete(path)  # decodable, but maybe cut short
    if img.size == 0:
        raise DataFileError(f'{path}: empty image {img.shape}')
    return np.ascontiguousarray(img[..., ::-1])


@register_decoder('label_png')
def decode_label_png(path: str, num_classes: Optional[int] = None) -> np.ndarray:
    """(H, W) uint8 class ids as stored (255 = ignore); range-checked if ``num_classes``."""
    arr = _read_label_2d(path, 'label PNG')
    _check_label_range(arr, path, 'label PNG', num_classes)
    return arr


@register_decoder('label_png_minus1')
def decode_label_png_minus1(path: str, num_classes: Optional[int] = None) -> np.ndarray:
    """NYUD-v2 convention: stored 0 (unlabeled) -> 255, stored k -> class k - 1.

    With ``num_classes`` C the stored values must lie in 0..C (a stored 255 would
    become class 254 and is rejected).
    """
    raw = _read_label_2d(path, 'label PNG (0 = unlabeled, k = class k-1)')
    if num_classes is not None:
        _check_label_range(raw, path, 'label PNG (0 = unlabeled, k = class k-1)',
                           num_classes + 1, extra_ok=())
    out = raw - np.uint8(1)  # uint8 wrap-around maps 0 to 255 exactly
    return out


@register_decoder('parts_png')
def decode_parts_png(path: str, num_classes: int = len(HUMAN_PARTS_CLASSES)) -> np.ndarray:
    """(H, W) uint8 human-part ids 0..6 and 255 (ignored / no person), as stored."""
    arr = _read_label_2d(path, 'human-parts PNG')
    _check_label_range(arr, path, 'human-parts PNG', num_classes)
    return arr


@register_decoder('saliency_png')
def decode_saliency_png(path: str, threshold: float = 0.5) -> np.ndarray:
    """(H, W) uint8 in {0, 1}: ``value / 255 > threshold`` (see :func:`read_binary_png`)."""
    return read_binary_png(path, 'saliency PNG', threshold)


def _labelmap_valid_mask(mat_path: str, valid_classes: Sequence[int],
                         shape: Tuple[int, int]) -> np.ndarray:
    mat = _load_mat(mat_path, 'PASCAL-Context LabelMap (.mat)', variable_names=['LabelMap'])
    if 'LabelMap' not in mat:
        raise DataFileError(f'{mat_path}: no "LabelMap" variable (expected the 459-class '
                            f'PASCAL-Context label map)')
    labels = np.asarray(mat['LabelMap'])
    if labels.shape != tuple(shape):
        raise DataFileError(f'{mat_path}: LabelMap has shape {labels.shape}, expected '
                            f'{tuple(shape)} (the normals map it masks)')
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.round(labels)):
            raise DataFileError(f'{mat_path}: LabelMap must hold integer class ids, got '
                                f'non-integer values (dtype {labels.dtype})')
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataFileError(f'{mat_path}: LabelMap holds negative class ids '
                            f'(min {int(labels.min())})')
    # a lookup table is ~10x faster than np.isin for ~170 valid ids
    classes = np.asarray(list(valid_classes), dtype=np.int64)
    size = int(max(labels.max(initial=0), classes.max(initial=0))) + 1
    lut = np.zeros(size, bool)
    lut[classes[classes >= 0]] = True
    return lut[labels]


@register_decoder('normals_png')
def decode_normals_png(path: str, valid_mask_mat: Optional[str] = None,
                       valid_classes: Optional[Sequence[int]] = None) -> np.ndarray:
    """(H, W, 3) float32 unit normals from an RGB PNG: n = 2 v / 255 - 1, renormalised.

    With ``valid_mask_mat`` (a ``.mat`` holding ``LabelMap``) and ``valid_classes``
    (label ids), pixels whose class is not listed become the invalid zero vector.
    Axes are passed through as stored (R -> x, G -> y, B -> z).
    """
    path = _require_file(path, 'normals PNG')
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataFileError(f'{path}: cannot decode the normals PNG (corrupt file or unsupported '
                            f'format)')
    if raw.dtype != np.uint8:
        raise DataFileError(f'{path}: the normals PNG must be 8-bit, got dtype {raw.dtype}')
    if raw.ndim != 3 or raw.shape[2] != 3:
        ch = 1 if raw.ndim == 2 else raw.shape[2]
        raise DataFileError(f'{path}: the normals PNG must have 3 channels (RGB), got {ch}')
    n = raw[..., ::-1].astype(np.float32)
    n *= 2.0 / 255.0
    n -= 1.0
    normals = _unit_normals(n)
    if (valid_mask_mat is None) != (valid_classes is None):
        raise ValueError('normals_png: give both valid_mask_mat and valid_classes, or neither '
                         f'(got valid_mask_mat={valid_mask_mat!r}, '
                         f'valid_classes={valid_classes!r})')
    if valid_mask_mat is not None:
        valid = _labelmap_valid_mask(valid_mask_mat, valid_classes, normals.shape[:2])
        normals[~valid] = 0.0
    return normals


@register_decoder('normals_npy')
def decode_normals_npy(path: str) -> np.ndarray:
    """(H, W, 3) float32 normals; zero vectors stay invalid, the rest are renormalised."""
    arr = _load_npy(path, 'normals (.npy, float (H, W, 3))')
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataFileError(f'{path}: normals must have shape (H, W, 3), got {arr.shape}')
    return _unit_normals(arr)


@register_decoder('npy')
def decode_npy(path: str) -> np.ndarray:
    """A float ``.npy`` map as stored ((H, W) or (H, W, C)); the task checks its shape."""
    path = _require_file(path, '.npy map')
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a DataFileError naming it
        raise DataFileError(f'{path}: cannot read the .npy map ({type(e).__name__}: {e})') from e
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataFileError(f'{path}: expected a float array, got {arr.dtype}')
    return arr


@register_decoder('depth_npy')
def decode_depth_npy(path: str) -> np.ndarray:
    """(H, W) float32 depth in metres; 0 = invalid. (H, W, 1) is squeezed."""
    arr = _load_npy(path, 'depth (.npy, float (H, W) metres)')
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataFileError(f'{path}: depth must have shape (H, W), got {arr.shape}')
    if (arr < 0).any():
        raise DataFileError(f'{path}: depth holds {int((arr < 0).sum())} negative values '
                            f'(min {float(arr.min())}); expected metres >= 0 with 0 = invalid')
    return np.ascontiguousarray(arr, dtype=np.float32)
