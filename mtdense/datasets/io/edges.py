"""Edge ground-truth decoders (registered in :data:`mtdense.datasets.io.DECODERS`).

==================== ===============================================================
``edge_labelmap_mat`` PASCAL-Context ``trainval/<id>.mat`` ``LabelMap`` -> (H, W) uint8
                      {0, 1}: ``thin(|Laplacian(LabelMap)| > 0)``
``edge_npy``          NYUD ``edge/<id>.npy`` -> (H, W) uint8 {0, 1}: ``value > 0.5``
``edge_png``          synthetic ``edge/<id>.png`` (grey, 0 / 255) -> (H, W) uint8 {0, 1}
==================== ===============================================================

The PASCAL edges follow the ASTMT / MTI-Net convention, written here from its
definition: the 4-neighbour Laplacian ``L[y-1,x] + L[y+1,x] + L[y,x-1] + L[y,x+1] -
4 L[y,x]`` of the label ids (``cv2.Laplacian`` with ``ksize=1`` on float64, borders
reflected without repeating the edge pixel, so the image border is no edge) is
non-zero on both sides of every boundary between two regions; thinning
(``skimage.morphology.thin``) leaves a one-pixel-wide line. Where the Laplacian
cancels out -- a one-pixel-wide region with label ``l`` between labels ``l - d`` and
``l + d`` -- that pixel is no edge, but its neighbours on both sides are.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from .core import DataFileError, _load_mat, _require_file, read_binary_png, register_decoder


def labelmap_edges(labels: np.ndarray) -> np.ndarray:
    """``thin(|Laplacian(labels)| > 0)`` as (H, W) uint8 in {0, 1} (1 = edge)."""
    from skimage.morphology import thin  # skimage import is slow; paid only when used
    lap = cv2.Laplacian(np.asarray(labels, dtype=np.float64), cv2.CV_64F, ksize=1)
    return thin(np.abs(lap) > 0).astype(np.uint8)


@register_decoder('edge_labelmap_mat')
def decode_edge_labelmap_mat(path: Optional[str]) -> np.ndarray:
    """(H, W) uint8 {0, 1} edges of a PASCAL-Context ``LabelMap`` (see module docs)."""
    what = 'PASCAL-Context LabelMap (.mat) for the edge ground truth'
    mat = _load_mat(path, what, variable_names=['LabelMap'])
    if 'LabelMap' not in mat:
        raise DataFileError(f'{path}: no "LabelMap" variable (expected the PASCAL-Context '
                            f'label map the edges are computed from)')
    labels = np.asarray(mat['LabelMap'])
    if labels.ndim != 2 or labels.size == 0:
        raise DataFileError(f'{path}: LabelMap must be a non-empty (H, W) array, got shape '
                            f'{labels.shape}')
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number) or \
            np.issubdtype(labels.dtype, np.complexfloating):
        raise DataFileError(f'{path}: LabelMap must hold integer class ids, got dtype '
                            f'{labels.dtype}')
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.isfinite(labels).all():
            raise DataFileError(f'{path}: LabelMap holds {int((~np.isfinite(labels)).sum())} '
                                f'NaN/inf values; expected integer class ids')
        if not np.array_equal(labels, np.round(labels)):
            raise DataFileError(f'{path}: LabelMap must hold integer class ids, got '
                                f'non-integer values (dtype {labels.dtype})')
    if labels.min() < 0:
        raise DataFileError(f'{path}: LabelMap holds negative class ids '
                            f'(min {labels.min()}); expected ids >= 0')
    return labelmap_edges(labels)


@register_decoder('edge_npy')
def decode_edge_npy(path: Optional[str], threshold: float = 0.5) -> np.ndarray:
    """(H, W) uint8 {0, 1}: 1 where the stored value is > ``threshold``.

    The file must hold one (H, W) array of bool, integer or float values in [0, 1]
    (NYUD edges are stored 0/1); NaN/inf, values outside [0, 1], other shapes or
    dtypes are errors.
    """
    what = 'edge map (.npy, (H, W) values in [0, 1])'
    path = _require_file(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # bad magic, truncated data, pickled objects, ...
        raise DataFileError(f'{path}: cannot load the {what} ({type(e).__name__}: {e})') from e
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise DataFileError(f'{path}: expected a single .npy array for the {what}, got '
                            f'{type(arr).__name__}')
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)
            or np.issubdtype(arr.dtype, np.floating)):
        raise DataFileError(f'{path}: the {what} must be bool, integer or float, got dtype '
                            f'{arr.dtype}')
    if arr.ndim != 2 or arr.size == 0:
        raise DataFileError(f'{path}: the {what} must be a non-empty (H, W) array, got shape '
                            f'{arr.shape}')
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise DataFileError(f'{path}: the {what} holds {int((~np.isfinite(arr)).sum())} '
                            f'NaN/inf values')
    if arr.dtype != bool and (arr.min() < 0 or arr.max() > 1):
        raise DataFileError(f'{path}: the {what} holds values in [{arr.min()}, {arr.max()}], '
                            f'outside [0, 1]')
    return (arr > threshold).astype(np.uint8)


@register_decoder('edge_png')
def decode_edge_png(path: Optional[str], threshold: float = 0.5) -> np.ndarray:
    """(H, W) uint8 {0, 1}: ``value / 255 > threshold`` of a grey edge PNG."""
    return read_binary_png(_require_file(path, 'edge PNG'), 'edge PNG', threshold)


__all__ = ['labelmap_edges', 'decode_edge_labelmap_mat', 'decode_edge_npy', 'decode_edge_png']
