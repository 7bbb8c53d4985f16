"""Synthetic scenes written in the exact on-disk layouts of the PASCAL_MT and NYUD_MT releases.

Lets every dataset config, reader and recipe run end to end without the real archives:
``tools/make_synthetic.py --layout pascal-mt|nyud-mt`` renders scenes with
:class:`~mtdense.datasets.synthetic.SyntheticSceneGenerator` and stores them file by
file as the releases do (formats in ``mtdense/datasets/pascal_context.py`` and
``nyud.py``), at the releases' image sizes: PASCAL's varied sizes (long side 500) and
NYUD's 480 x 640. The same readers then decode them as they decode the real data.

Label mappings (the synthetic classes have no exact VOC / NYUv2 counterparts, so
stand-ins are used; the mapping is fixed and documented here):

=========  ==============  ====================  ==================
synthetic  VOC (PASCAL)    Context ``LabelMap``  NYUv2-40 (id + 1)
=========  ==============  ====================  ==================
wall       background 0    wall 440              wall 1
floor      background 0    floor 158             floor 2
ceiling    background 0    ceiling 68            ceiling 22
table      diningtable 11  table 397             table 7
box        tvmonitor 20    box 37                box 29
ball       pottedplant 16  ball 10               otherprop 40
cylinder   bottle 5        bottle 34             lamp 35
person     person 15       person 284            person 31
=========  ==============  ====================  ==================

Every ``LabelMap`` class above is NYU-shared, so the distilled normals are valid on
all pixels with valid synthetic normals; pixels with invalid normals get the
non-shared Context class 2 (aeroplane) so that the reader invalidates them. Person
parts are written as one Pascal-Part person object per image whose parts are named
``head``, ``torso``, ``luarm``, ``llarm``, ``luleg``, ``llleg`` (decoded back to the
same 7-class map). NYUD ``edge/<id>.npy`` holds the renderer's exact one-pixel object,
part and occlusion edges (:func:`~mtdense.datasets.synthetic.edges.synthetic_edges`),
float32 0/1; PASCAL edges are what the reader derives from the written ``LabelMap``.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from scipy.io import savemat

from mtdense.tasks import IGNORE_INDEX
from .classes import CLASS_ID, CLASSES, GENERATOR_VERSION
from .edges import synthetic_edges
from .renderer import SyntheticSceneGenerator
from .writer import sample_id

LAYOUTS: Tuple[str, ...] = ('pascal-mt', 'nyud-mt')
#: (h, w) sizes cycled through for the PASCAL layout: frequent PASCAL VOC image sizes.
PASCAL_SIZES: Tuple[Tuple[int, int], ...] = ((375, 500), (500, 375), (333, 500), (500, 333),
                                            (366, 500), (281, 500))
NYUD_SIZE: Tuple[int, int] = (480, 640)
#: written last: its presence marks a complete tree and records the settings
MARKER_FILE = 'mtdense_synthetic_release.json'

_VOC = dict(wall=0, floor=0, ceiling=0, table=11, box=20, ball=16, cylinder=5, person=15)
_CONTEXT = dict(wall=440, floor=158, ceiling=68, table=397, box=37, ball=10, cylinder=34,
                person=284)
_CONTEXT_NOT_NYU = 2  # aeroplane: normals invalid there
_NYU40 = dict(wall=1, floor=2, ceiling=22, table=7, box=29, ball=40, cylinder=35, person=31)
#: synthetic part id (mtdense.tasks.HUMAN_PARTS_CLASSES order) -> Pascal-Part part name
PART_NAMES: Dict[int, str] = {1: 'head', 2: 'torso', 3: 'luarm', 4: 'llarm', 5: 'luleg',
                              6: 'llleg'}


def _lut(mapping: Dict[str, int], fill: int, dtype) -> np.ndarray:
    """256-entry lookup table from synthetic class ids (255 = ignore -> ``fill``)."""
    lut = np.full(256, fill, dtype=dtype)
    for name, value in mapping.items():
        lut[CLASS_ID[name]] = value
    return lut


# ------------------------------------------------------------------ file writers
def _mkdir_for(path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def write_rgb(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (.jpg at quality 95, or .png)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith('.jpg') else []
    if not cv2.imwrite(_mkdir_for(path), np.ascontiguousarray(rgb[..., ::-1]), params):
        raise OSError(f'could not write {path} (cv2.imwrite returned False)')


def write_gray_png(path: str, arr: np.ndarray) -> None:
    if not cv2.imwrite(_mkdir_for(path), np.ascontiguousarray(arr)):
        raise OSError(f'could not write {path} (cv2.imwrite returned False)')


def write_palette_png(path: str, labels: np.ndarray, palette: Sequence[Sequence[int]]) -> None:
    """A palette ("P" mode) PNG, like the PASCAL VOC annotations."""
    im = Image.fromarray(labels.astype(np.uint8), mode='P')
    flat = [v for c in palette for v in c]
    im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(_mkdir_for(path))


def _struct_array(records: List[Dict[str, Any]], fields: Sequence[str]) -> np.ndarray:
    """A 1 x N MATLAB struct array (as scipy.io.savemat writes numpy record arrays)."""
    arr = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            arr[0, i][f] = r[f]
    return arr


def write_pascal_part_mat(path: str, imname: str, objects: List[Dict[str, Any]]) -> None:
    """Pascal-Part ``anno`` file: objects of dict(cls, class_ind, mask, parts=[(name, mask)]).

    Reproduces the release's nesting: ``anno`` (1x1 struct: imname, objects),
    ``objects`` 1xN struct (class, class_ind, mask, parts), ``parts`` 1xM struct
    (part_name, mask), or an empty ``[]`` for objects without parts.
    """
    objs = []
    for o in objects:
        parts = o.get('parts') or []
        part_arr = (_struct_array([dict(part_name=n, mask=m.astype(np.uint8)) for n, m in parts],
                                  ['part_name', 'mask']) if parts else np.zeros((0, 0)))
        objs.append({'class': o['cls'], 'class_ind': np.array([[o['class_ind']]], np.float64),
                     'mask': o['mask'].astype(np.uint8), 'parts': part_arr})
    obj_arr = (_struct_array(objs, ['class', 'class_ind', 'mask', 'parts']) if objs
               else np.zeros((0, 0)))
    savemat(_mkdir_for(path), {'anno': {'imname': imname, 'objects': obj_arr}},
            do_compression=True)


def write_labelmap_mat(path: str, labelmap: np.ndarray) -> None:
    """PASCAL-Context ``trainval/<id>.mat`` with its 459-class ``LabelMap``."""
    savemat(_mkdir_for(path), {'LabelMap': labelmap.astype(np.uint16)}, do_compression=True)


def encode_normals_png(n: np.ndarray) -> np.ndarray:
    """Unit normals -> RGB uint8 the way the distilled PNGs store them (2 v / 255 - 1)."""
    return np.clip(np.round((n + 1.0) * 127.5), 0, 255).astype(np.uint8)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """float32 0/1 map: 1 where the right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    return edge.astype(np.float32)


# ---------------------------------------------------------------- sample writers
def write_pascal_sample(root: str, img_id: str, sample: Dict[str, np.ndarray]) -> None:
    """One rendered sample as the PASCAL_MT release stores it."""
    from mtdense.datasets.base import voc_palette
    j = os.path.join
    semseg = sample['semseg']
    write_rgb(j(root, 'JPEGImages', f'{img_id}.jpg'), sample['img'])
    write_palette_png(j(root, 'semseg', 'VOC12', f'{img_id}.png'),
                      _lut(_VOC, IGNORE_INDEX, np.uint8)[semseg], voc_palette(256))
    parts = sample['human_parts']
    person = semseg == CLASS_ID['person']
    objects: List[Dict[str, Any]] = []
    if person.any() and (parts != IGNORE_INDEX).any():
        named = [(PART_NAMES[p], parts == p) for p in sorted(PART_NAMES) if (parts == p).any()]
        objects.append(dict(cls='person', class_ind=15, mask=person, parts=named))
    write_pascal_part_mat(j(root, 'human_parts', f'{img_id}.mat'), img_id, objects)
    write_gray_png(j(root, 'sal_distill', f'{img_id}.png'),
                   np.where(sample['saliency'] == 1, 255, 0).astype(np.uint8))
    normals = sample['normals']
    write_rgb(j(root, 'normals_distill', f'{img_id}.png'), encode_normals_png(normals))
    labelmap = _lut(_CONTEXT, _CONTEXT_NOT_NYU, np.uint16)[semseg]
    labelmap[~np.any(normals != 0, axis=-1)] = _CONTEXT_NOT_NYU
    write_labelmap_mat(j(root, 'pascal-context', 'trainval', f'{img_id}.mat'), labelmap)


def write_nyud_sample(root: str, img_id: str, sample: Dict[str, np.ndarray]) -> None:
    """One rendered sample as the NYUD_MT release stores it."""
    j = os.path.join
    semseg = sample['semseg']
    write_rgb(j(root, 'images', f'{img_id}.jpg'), sample['img'])
    write_gray_png(j(root, 'segmentation', f'{img_id}.png'), _lut(_NYU40, 0, np.uint8)[semseg])
    np.save(_mkdir_for(j(root, 'depth', f'{img_id}.npy')), sample['depth'].astype(np.float32))
    np.save(_mkdir_for(j(root, 'normals', f'{img_id}.npy')),
            sample['normals'].astype(np.float32))
    np.save(_mkdir_for(j(root, 'edge', f'{img_id}.npy')),
            synthetic_edges(sample).astype(np.float32))


_SAMPLE_WRITERS = {'pascal-mt': write_pascal_sample, 'nyud-mt': write_nyud_sample}
_SPLIT_DIRS = {'pascal-mt': os.path.join('ImageSets', 'Context'), 'nyud-mt': 'gt_sets'}
_TOP_DIRS = {'pascal-mt': ('JPEGImages', 'ImageSets', 'semseg', 'human_parts', 'sal_distill',
                           'normals_distill', 'pascal-context'),
             'nyud-mt': ('images', 'segmentation', 'depth', 'normals', 'edge', 'gt_sets')}

# Worker state: generators per size, built lazily per process.
_STATE: Dict[str, Any] = {}


def _init_worker(layout: str, root: str, seed: int, ids: List[str],
                 sizes: List[Tuple[int, int]]) -> None:
    _STATE.update(layout=layout, root=root, seed=seed, ids=ids, sizes=sizes, gens={})


def _make_one(index: int) -> int:
    size = _STATE['sizes'][index]
    gens = _STATE['gens']
    if size not in gens:
        gens[size] = SyntheticSceneGenerator(size[0], size[1], _STATE['seed'])
    _SAMPLE_WRITERS[_STATE['layout']](_STATE['root'], _STATE['ids'][index], gens[size](index))
    return index


class ReleaseLayoutWriter:
    """Render ``num`` scenes into a PASCAL_MT or NYUD_MT tree under ``out_dir``.

    Args:
        out_dir: root of the tree (the release's top folder).
        layout: ``'pascal-mt'`` or ``'nyud-mt'``.
        num: number of images (> 1: both splits get one at least).
        seed: scene seed; image ``i`` depends only on ``(seed, i)`` and its size.
        sizes: ``(h, w)`` sizes cycled over the images; default PASCAL's varied sizes
            (:data:`PASCAL_SIZES`) or NYUD's 480 x 640.
        val_fraction: share of the ids listed in the ``val`` split (the last ones).
        workers: processes; the output does not depend on it.
        overwrite: replace the layout folders of a non-empty ``out_dir`` that is not a
            tree written with the same settings.
    """

    def __init__(self, out_dir: str, layout: str, num: int, seed: int = 0,
                 sizes: Optional[Sequence[Tuple[int, int]]] = None, val_fraction: float = 0.3,
                 workers: int = 1, overwrite: bool = False) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f'ReleaseLayoutWriter: layout must be one of {list(LAYOUTS)}, '
                             f'got {layout!r}')
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
            raise ValueError(f'ReleaseLayoutWriter: num must be an integer >= 2 (a train and '
                             f'a val image at least), got {num!r}')
        num_val = int(round(num * float(val_fraction)))
        if not 0 < num_val < num:
            raise ValueError(f'ReleaseLayoutWriter: val_fraction={val_fraction} of num={num} '
                             'must leave at least one train and one val image')
        if sizes is None:
            sizes = PASCAL_SIZES if layout == 'pascal-mt' else (NYUD_SIZE,)
        sizes = [(int(h), int(w)) for h, w in sizes]
        for h, w in sizes:
            if min(h, w) < SyntheticSceneGenerator.MIN_SIZE:
                raise ValueError(f'ReleaseLayoutWriter: size (h, w) = {(h, w)} is below the '
                                 f'renderer minimum {SyntheticSceneGenerator.MIN_SIZE}')
        if int(workers) < 1:
            raise ValueError(f'ReleaseLayoutWriter: workers must be >= 1, got {workers!r}')
        self.out_dir, self.layout, self.num, self.seed = str(out_dir), layout, int(num), int(seed)
        self.sizes = [sizes[i % len(sizes)] for i in range(self.num)]
        self.num_val, self.workers, self.overwrite = num_val, int(workers), bool(overwrite)
        prefix = '2008_' if layout == 'pascal-mt' else ''
        self.ids = [prefix + sample_id(i, self.num) for i in range(self.num)]

    def settings(self) -> Dict[str, Any]:
        return dict(layout=self.layout, generator_version=GENERATOR_VERSION, seed=self.seed,
                    num=self.num, num_val=self.num_val, sizes=[list(s) for s in self.sizes])

    def _prepare_dir(self) -> None:
        root = self.out_dir
        if os.path.exists(root) and not os.path.isdir(root):
            raise FileExistsError(f'{root!r} exists and is not a directory')
        marker = os.path.join(root, MARKER_FILE)
        if os.path.isdir(root) and os.listdir(root):
            same = False
            if os.path.isfile(marker):
                with open(marker) as f:
                    same = json.load(f) == self.settings()
            if not (same or self.overwrite):
                raise FileExistsError(
                    f'{root!r} is not empty and is not a synthetic {self.layout} tree written with '
                    f'these settings (see {MARKER_FILE}); use --overwrite to replace its '
                    'dataset folders, or choose another --out')
            for name in _TOP_DIRS[self.layout]:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            if os.path.exists(marker):
                os.remove(marker)
        os.makedirs(root, exist_ok=True)

    def run(self, progress: bool = False) -> Dict[str, Any]:
        """Write the tree (``progress``: a bar with rate and ETA); returns the settings with
        the split sizes."""
        self._prepare_dir()
        args = (self.layout, self.out_dir, self.seed, self.ids, self.sizes)
        bar = None
        if progress:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(self.num)
        if self.workers == 1:
            _init_worker(*args)
            done = map(_make_one, range(self.num))
            for _ in done:
                if bar is not None:
                    bar.update()
        else:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context('fork' if 'fork' in methods else 'spawn')
            with ctx.Pool(self.workers, initializer=_init_worker, initargs=args) as pool:
                for _ in pool.imap_unordered(_make_one, range(self.num)):
                    if bar is not None:
                        bar.update()
        if bar is not None:
            bar.file.write('\n')
        num_train = self.num - self.num_val
        split_dir = os.path.join(self.out_dir, _SPLIT_DIRS[self.layout])
        os.makedirs(split_dir, exist_ok=True)
        for split, ids in (('train', self.ids[:num_train]), ('val', self.ids[num_train:])):
            with open(os.path.join(split_dir, f'{split}.txt'), 'w') as f:
                f.write(''.join(f'{i}\n' for i in ids))
        tmp = os.path.join(self.out_dir, MARKER_FILE + '.tmp')
        with open(tmp, 'w') as f:
            json.dump(self.settings(), f)
        os.replace(tmp, os.path.join(self.out_dir, MARKER_FILE))
        return dict(self.settings(), train=num_train, val=self.num_val, classes=list(CLASSES))


__all__ = ['ReleaseLayoutWriter', 'LAYOUTS', 'PASCAL_SIZES', 'NYUD_SIZE', 'write_pascal_sample',
           'write_nyud_sample', 'write_pascal_part_mat', 'write_labelmap_mat',
           'write_palette_png', 'write_rgb', 'write_gray_png', 'encode_normals_png',
           'label_boundaries', 'PART_NAMES']
