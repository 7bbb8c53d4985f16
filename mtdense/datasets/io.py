"""File decoders for multi-task dense datasets.

Every decoder has the signature ``decoder(path, **kwargs) -> np.ndarray``, returns
an array in the conventions of ``mtdense.tasks`` (see ``docs/architecture.md``)
and raises :class:`DataFileError` naming the file and what was expected when the
file is missing, unreadable, of the wrong dtype/shape/channels, or holds values
outside the documented range. Decoders are looked up by name in :data:`DECODERS`,
so a dataset's data info says *how* to read each file::

    data_info['ann_info']['depth'] = dict(path='.../depth/0001.npy', decoder='depth_npy')
    depth = decode_ann(data_info['ann_info']['depth'])

Registered decoders:

==================  ==========================================================
``image``           RGB uint8 (H, W, 3) via OpenCV (EXIF orientation ignored so
                    the pixel grid matches the label files)
``label_png``       (H, W) uint8 as stored (e.g. PASCAL semseg 0..20, 255 ignore)
``label_png_minus1`` (H, W) uint8, stored 0 -> 255, stored k -> k - 1 (NYUD-v2)
``parts_png``       (H, W) uint8 human-part ids 0..6 / 255, as stored
``pascal_parts_mat`` Pascal-Part ``anno`` struct -> (H, W) uint8 human parts
``saliency_png``    (H, W) uint8 in {0, 1}: value / 255 > 0.5
``normals_png``     (H, W, 3) float32 unit vectors from 2 v / 255 - 1, optionally
                    masked by a PASCAL-Context ``LabelMap``
``normals_npy``     (H, W, 3) float32 unit vectors, zero vector = invalid
``depth_npy``       (H, W) float32 metres, 0 = invalid
==================  ==========================================================

Label PNGs are read with Pillow, not OpenCV: OpenCV expands palette ("P" mode)
PNGs, such as the PASCAL VOC annotations, to colours and loses the class indices.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from mtdense.tasks import HUMAN_PARTS_CLASSES, IGNORE_INDEX


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


# ------------------------------------------------------------------- Pascal-Part (.mat)
#: Pascal-Part person part names -> mtdense human-part ids (see ``HUMAN_PARTS_CLASSES``:
#: 1 head, 2 torso, 3 upper arm, 4 lower arm (incl. hands), 5 upper leg,
#: 6 lower leg (incl. feet)).
PASCAL_PERSON_PART_IDS: Dict[str, int] = {
    **{n: 1 for n in ('head', 'hair', 'leye', 'reye', 'lear', 'rear', 'lebrow', 'rebrow',
                      'nose', 'mouth')},
    'torso': 2, 'neck': 2,
    'luarm': 3, 'ruarm': 3,
    'llarm': 4, 'rlarm': 4, 'lhand': 4, 'rhand': 4,
    'luleg': 5, 'ruleg': 5,
    'llleg': 6, 'rlleg': 6, 'lfoot': 6, 'rfoot': 6,
}
#: Pascal-Part / PASCAL VOC class index of ``person``.
PASCAL_PERSON_CLASS_IND = 15


def _records(x: Any) -> List[Dict[str, Any]]:
    """Normalise a ``simplify_cells`` struct array (dict, list, ndarray, []) to a list."""
    if isinstance(x, dict):
        return [x]
    if isinstance(x, np.ndarray):
        if x.size == 0:
            return []
        x = list(x.ravel())
    if isinstance(x, (list, tuple)):
        if not all(isinstance(r, dict) for r in x):
            kinds = [type(r).__name__ for r in x]
            raise TypeError(f'expected a struct array, got elements {kinds}')
        return list(x)
    raise TypeError(f'expected a struct array, got {type(x).__name__}')


def _mat_str(x: Any) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind == 'U' and x.size == 1:
        return str(x.item())
    raise TypeError(f'expected a string, got {type(x).__name__}')


def _is_person(obj: Dict[str, Any]) -> bool:
    if 'class' in obj:
        return _mat_str(obj['class']).strip().lower() == 'person'
    return int(np.asarray(obj['class_ind']).item()) == PASCAL_PERSON_CLASS_IND


def _image_shape(image_path: str) -> Tuple[int, int]:
    """(H, W) of an image from its header only (cheap)."""
    image_path = _require_file(image_path, 'image (used for the parts map size)')
    try:
        with Image.open(image_path) as im:
            w, h = im.size
    except Exception as e:
        raise DataFileError(f'{image_path}: cannot read the image size ({e})') from e
    return h, w


@register_decoder('pascal_parts_mat')
def decode_pascal_parts_mat(path: Optional[str], image_path: Optional[str] = None,
                            person_fill: int = 0, allow_missing: bool = False) -> np.ndarray:
    """Pascal-Part annotation -> (H, W) uint8 human parts (0 bg, 1..6 parts, 255 ignore).

    The file holds a struct ``anno`` whose ``objects`` struct array has, per object,
    ``class`` (e.g. ``'person'``), ``class_ind``, ``mask`` and a ``parts`` struct array
    of ``part_name`` / ``mask``. Person part masks are painted in file order with
    :data:`PASCAL_PERSON_PART_IDS` (a later part wins where masks overlap).

    Choices (documented, ASTMT-compatible by default):

    * Background (0) is every pixel outside the part masks; pixels of a person object
      not covered by any of its parts (and persons annotated without parts, when
      another person in the image has parts) get ``person_fill`` -- 0 (background,
      as in ASTMT) by default, or 255 to ignore them.
    * An image without any person carrying part annotations gives an all-255 map
      (no supervision; the metric skips it). The size then comes from any object
      mask, else from ``image_path``.
    * ``allow_missing=True`` treats a missing ``path`` (or ``None``) as "no person"
      (all 255, sized from ``image_path``); by default a missing file is an error,
      since the PASCAL_MT release ships a ``.mat`` for every image.
    * An unknown person part name raises (nothing is dropped silently).
    """
    if person_fill not in (0, IGNORE_INDEX):
        raise ValueError(f'pascal_parts_mat: person_fill must be 0 or {IGNORE_INDEX}, '
                         f'got {person_fill!r}')
    if allow_missing and (path is None or not os.path.isfile(path)):
        if image_path is None:
            raise DataFileError(f'{path}: parts file missing and no image_path to size the '
                                f'all-ignore map')
        return np.full(_image_shape(image_path), IGNORE_INDEX, np.uint8)
    what = 'Pascal-Part annotation (.mat with struct "anno")'
    mat = _load_mat(path, what, simplify_cells=True)
    try:
        anno = mat['anno']
        objects = _records(anno['objects'])
    except (KeyError, TypeError) as e:
        raise DataFileError(f'{path}: expected struct anno.objects of a {what} ({e})') from e

    shape: Optional[Tuple[int, int]] = None
    persons: List[Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]] = []
    for k, obj in enumerate(objects):
        try:
            mask = np.asarray(obj['mask'])
            person = _is_person(obj)
            parts = _records(obj['parts']) if person else []
        except (KeyError, TypeError, ValueError) as e:
            raise DataFileError(f'{path}: object {k} is not a valid Pascal-Part object with '
                                f'class/mask/parts ({type(e).__name__}: {e})') from e
        if mask.ndim != 2:
            raise DataFileError(f'{path}: object {k} mask has shape {mask.shape}, expected (H, W)')
        if shape is None:
            shape = mask.shape
        elif mask.shape != shape:
            raise DataFileError(f'{path}: object {k} mask has shape {mask.shape}, expected '
                                f'{shape} like the other objects')
        if not person:
            continue
        obj_parts = []
        for j, part in enumerate(parts):
            try:
                name = _mat_str(part['part_name']).strip()
                pmask = np.asarray(part['mask'])
            except (KeyError, TypeError) as e:
                raise DataFileError(f'{path}: object {k} part {j} lacks part_name/mask '
                                    f'({e})') from e
            if name not in PASCAL_PERSON_PART_IDS:
                raise DataFileError(f'{path}: object {k} has unknown person part {name!r}; '
                                    f'known: {sorted(PASCAL_PERSON_PART_IDS)}')
            if pmask.shape != shape:
                raise DataFileError(f'{path}: object {k} part {name!r} mask has shape '
                                    f'{pmask.shape}, expected {shape}')
            obj_parts.append((PASCAL_PERSON_PART_IDS[name], pmask.astype(bool)))
        persons.append((mask.astype(bool), obj_parts))

    if not any(parts for _, parts in persons):
        if shape is None:
            if image_path is None:
                raise DataFileError(f'{path}: no object masks to size the all-ignore parts map '
                                    f'and no image_path given')
            shape = _image_shape(image_path)
        return np.full(shape, IGNORE_INDEX, np.uint8)
    target = np.zeros(shape, np.uint8)
    # Silhouettes first, then every part on top, so a later person's silhouette
    # cannot erase an earlier person's parts.
    for silhouette, _ in persons:
        target[silhouette] = person_fill
    for _, parts in persons:
        for pid, pmask in parts:
            target[pmask] = pid
    return target
