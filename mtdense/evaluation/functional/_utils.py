"""Small helpers shared by the metric accumulators."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Sequence, Tuple, Union

import numpy as np

ArrayOrList = Union[np.ndarray, Sequence[np.ndarray]]


def to_numpy(x: Any, name: str = 'array') -> np.ndarray:
    """Convert a numpy array or a torch tensor (any device) to a numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, 'detach') and hasattr(x, 'cpu'):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == 'torch.bfloat16':  # numpy has no bfloat16 (AMP predictions)
            x = x.float()
        return x.numpy()
    if isinstance(x, (list, tuple, int, float)):
        return np.asarray(x)
    raise TypeError(f'{name}: expected a numpy array or a torch tensor, got {type(x).__name__}')


def check_same_shape(pred: np.ndarray, gt: np.ndarray, what: str) -> None:
    """Predictions must already be at ground-truth resolution."""
    if pred.shape != gt.shape:
        raise ValueError(
            f'{what}: prediction shape {tuple(pred.shape)} != ground-truth shape '
            f'{tuple(gt.shape)}; resize predictions to the ground-truth resolution '
            f'(ori_shape) before evaluation')


def iter_pairs(preds: ArrayOrList, gts: ArrayOrList, image_ndim: int,
               what: str) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield (pred, gt) per image.

    ``preds``/``gts`` are either sequences of per-image arrays (sizes may differ), or
    one array that is a single image (``ndim == image_ndim``) or a batch of images
    stacked on axis 0 (``ndim == image_ndim + 1``).
    """
    if isinstance(preds, (list, tuple)) != isinstance(gts, (list, tuple)):
        raise TypeError(f'{what}: pass predictions and ground truths both as arrays or both '
                        f'as lists, got {type(preds).__name__} and {type(gts).__name__}')
    if isinstance(preds, (list, tuple)):
        if len(preds) != len(gts):
            raise ValueError(f'{what}: {len(preds)} predictions but {len(gts)} ground truths')
        for i, (p, g) in enumerate(zip(preds, gts)):
            p, g = to_numpy(p, f'{what} prediction {i}'), to_numpy(g, f'{what} ground truth {i}')
            if p.ndim != image_ndim:
                raise ValueError(f'{what}: list item {i} must have {image_ndim} dims '
                                 f'(one image), got shape {p.shape}')
            yield p, g
        return
    preds, gts = to_numpy(preds, f'{what} predictions'), to_numpy(gts, f'{what} ground truths')
    check_same_shape(preds, gts, what)
    if preds.ndim == image_ndim:
        yield preds, gts
    elif preds.ndim == image_ndim + 1:
        for p, g in zip(preds, gts):
            yield p, g
    else:
        raise ValueError(f'{what}: expected one image with {image_ndim} dims or a batch with '
                         f'{image_ndim + 1} dims, got shape {preds.shape}')


def safe_ratio(num: np.ndarray, den: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    """``num / den`` where 0/0 is 1 if ``both_empty`` (a perfect empty answer) else 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    return np.where(den > 0, out, np.where(both_empty, 1.0, 0.0))


def sparse_counts(counts: np.ndarray) -> Dict[str, np.ndarray]:
    """Compact form of a mostly-zero count vector: indices and values of the non-zeros.

    The smallest unsigned dtypes that hold the values are used, because one such record
    is kept per evaluated image (e.g. an angle histogram) until the split is summed.
    """
    idx = np.flatnonzero(counts)
    vals = counts[idx]
    return {'idx': idx.astype(_min_uint(counts.size - 1)),
            'cnt': vals.astype(_min_uint(int(vals.max()) if vals.size else 0))}


def _min_uint(max_value: int) -> type:
    for dtype in (np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def add_sparse(dense: np.ndarray, sparse: Dict[str, np.ndarray], what: str) -> None:
    """Add a :func:`sparse_counts` record into ``dense`` (flat view) in place."""
    idx = np.asarray(sparse['idx']).astype(np.int64)
    cnt = np.asarray(sparse['cnt']).astype(np.int64)
    if idx.shape != cnt.shape:
        raise ValueError(f'{what}: sparse record has {idx.size} indices but {cnt.size} counts')
    if idx.size and (idx.min() < 0 or idx.max() >= dense.size):
        raise ValueError(f'{what}: sparse index out of range [0, {dense.size}); the state '
                         f'was produced with a different configuration')
    np.add.at(dense.reshape(-1), idx, cnt)


def check_state_keys(state: Dict[str, Any], keys: List[str], what: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise KeyError(f'{what}: state is missing keys {missing} (has {sorted(state)})')
