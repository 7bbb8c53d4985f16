"""The decoder registry, :class:`DataFileError` and the checked readers the decoders share."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

import numpy as np
from PIL import Image

from mtdense.tasks import IGNORE_INDEX


class DataFileError(ValueError):
    """A data file is missing, unreadable or violates the expected format."""


Decoder = Callable[..., np.ndarray]
DECODERS: Dict[str, Decoder] = {}


def register_decoder(name: str) -> Callable[[Decoder], Decoder]:
    """Register ``fn`` in :data:`DECODERS` under ``name`` (no silent overrides)."""

    def _register(fn: Decoder) -> Decoder:
        if name in DECODERS:
            raise KeyError(f'decoder {name!r} is already registered')
        DECODERS[name] = fn
        return fn

    return _register


def decode(name: str, path: Optional[str], **kwargs: Any) -> np.ndarray:
    """Decode ``path`` with the decoder registered as ``name``."""
    if name not in DECODERS:
        raise KeyError(f'unknown decoder {name!r}; registered decoders: {sorted(DECODERS)}')
    return DECODERS[name](path, **kwargs)


def decode_ann(ann: Mapping[str, Any]) -> np.ndarray:
    """Decode one ``data_info['ann_info'][task]`` entry (``path``, ``decoder``, kwargs)."""
    for key in ('path', 'decoder'):
        if key not in ann:
            raise KeyError(f'annotation entry {dict(ann)} has no {key!r} key')
    kwargs = {k: v for k, v in ann.items() if k not in ('path', 'decoder')}
    return decode(ann['decoder'], ann['path'], **kwargs)


# --------------------------------------------------------------------------- helpers
def _require_file(path: Optional[str], what: str) -> str:
    if path is None:
        raise DataFileError(f'no file given for the {what}')
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileError(f'{path}: file not found (expected the {what})')
    return path


def _read_pil(path: str, what: str) -> np.ndarray:
    """Read a PNG with Pillow keeping stored values (palette indices, not colours)."""
    path = _require_file(path, what)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.array(im)
    except Exception as e:  # Pillow raises several unrelated types for bad files
        raise DataFileError(f'{path}: cannot decode the {what} ({type(e).__name__}: {e})') from e
    if mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
        raise DataFileError(f'{path}: the {what} must be an 8-bit PNG, got Pillow mode {mode!r} '
                            f'(dtype {arr.dtype})')
    if arr.dtype == bool:  # 1-bit PNGs
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        raise DataFileError(f'{path}: the {what} must be 8-bit (uint8), got dtype {arr.dtype}')
    return arr


def _read_label_2d(path: str, what: str) -> np.ndarray:
    arr = _read_pil(path, what)
    if arr.ndim != 2:
        raise DataFileError(f'{path}: the {what} must be a single-channel (grey or palette) PNG, '
                            f'got an array of shape {arr.shape}')
    return arr


def _check_label_range(arr: np.ndarray, path: str, what: str, num_classes: Optional[int],
                       extra_ok: Iterable[int] = (IGNORE_INDEX, )) -> None:
    """Every value must be a class id < ``num_classes`` or one of ``extra_ok``."""
    if num_classes is None:
        return
    extra = set(int(v) for v in extra_ok)
    present = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))  # uint8: faster than unique
    bad = [int(v) for v in present if v >= num_classes and int(v) not in extra]
    if bad:
        plus = f' or {sorted(extra)}' if extra else ''
        raise DataFileError(f'{path}: the {what} holds values {bad[:10]} outside the expected '
                            f'range 0..{num_classes - 1}{plus}')


def _load_npy(path: str, what: str) -> np.ndarray:
    path = _require_file(path, what)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # bad magic, truncated data, pickled objects, ...
        raise DataFileError(f'{path}: cannot load the {what} as a .npy array '
                            f'({type(e).__name__}: {e})') from e
    if not isinstance(arr, np.ndarray):
        raise DataFileError(f'{path}: expected a single .npy array for the {what}, '
                            f'got {type(arr).__name__}')
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataFileError(f'{path}: the {what} must be a floating-point array, '
                            f'got dtype {arr.dtype}')
    if not np.isfinite(arr).all():
        n = int((~np.isfinite(arr)).sum())
        raise DataFileError(f'{path}: the {what} holds {n} NaN/inf values; invalid pixels must '
                            f'be encoded explicitly (0 for depth, zero vector for normals)')
    return arr


def _load_mat(path: str, what: str, **kwargs: Any) -> Dict[str, Any]:
    from scipy.io import loadmat  # scipy import is slow; only paid when .mat files are read
    path = _require_file(path, what)
    try:
        return loadmat(path, **kwargs)
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise DataFileError(f'{path}: MATLAB v7.3 files are not supported for the {what}; '
                            f'save it in v5 format ({e})') from e
    except Exception as e:
        raise DataFileError(f'{path}: cannot read the {what} as a MATLAB file '
                            f'({type(e).__name__}: {e})') from e


def _unit_normals(n: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Renormalise to unit length; (near-)zero vectors become the invalid zero vector."""
    n = np.asarray(n, dtype=np.float32)
    norm = np.sqrt(np.einsum('...i,...i->...', n, n))
    inv = np.zeros_like(norm)
    np.divide(1.0, norm, out=inv, where=norm > eps)
    return n * inv[..., None]


def _check_jpeg_complete(path: str) -> None:
    """A JPEG ends with the end-of-image marker; OpenCV decodes a truncated one silently
    (the missing rows come out grey), so truncation is checked here (last 1 KiB read)."""
    if not path.lower().endswith(('.jpg', '.jpeg')):
        return
    size = os.path.getsize(path)
    if size == 0:
        raise DataFileError(f'{path}: empty image file (0 bytes)')
    with open(path, 'rb') as f:
        if f.read(2) != b'\xff\xd8':
            return  # not a JPEG stream at all: the decoder reports it
        f.seek(max(0, size - 1024))
        if b'\xff\xd9' not in f.read():
            raise DataFileError(f'{path}: truncated JPEG (no end-of-image marker; {size} bytes)')


# --------------------------------------------------------------------------- decoders


def read_binary_png(path: str, what: str, threshold: float = 0.5) -> np.ndarray:
    """(H, W) uint8 in {0, 1}: ``value / 255 > threshold`` of a grey PNG.

    Grey (or palette-free) PNGs are expected. An RGB(A) PNG is accepted only when
    its three colour channels are identical (a grey map saved as colour); a true
    colour image is rejected rather than silently reduced to one channel.
    """
    arr = _read_pil(path, what)
    if arr.ndim == 3:
        if arr.shape[2] not in (3, 4) or not (np.array_equal(arr[..., 0], arr[..., 1])
                                              and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DataFileError(f'{path}: the {what} must be single-channel (grey), got '
                                f'{arr.shape[2]} channels with differing values')
        arr = arr[..., 0]
    elif arr.ndim != 2:
        raise DataFileError(f'{path}: the {what} must be (H, W), got shape {arr.shape}')
    return (arr.astype(np.float32) / 255.0 > threshold).astype(np.uint8)
