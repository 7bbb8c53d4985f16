"""The Pascal-Part ``anno`` struct (.mat) -> human-part map decoder."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from mtdense.tasks import IGNORE_INDEX

from .core import DataFileError, _load_mat, _require_file, register_decoder


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
