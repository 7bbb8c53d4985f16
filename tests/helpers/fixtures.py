"""Builders of tiny dataset trees in the exact layouts of the real releases.

Each ``make_*`` writes a handful of small images (default 24 x 32) under a root
folder and returns the arrays it wrote, so tests can compute expected decoded
values by hand (``from helpers import fixtures as fx``: tests/datasets/test_io.py,
tests/datasets/test_readers.py).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

H, W = 24, 32

PASCAL_SPLITS = {'train': ['2008_000002', '2008_000003'], 'val': ['2008_000007']}
NYUD_SPLITS = {'train': ['0001', '0002', '0003'], 'val': ['0004', '0005']}
SYNTH_SPLITS = {'train': ['000000', '000001'], 'val': ['000002']}


# ----------------------------------------------------------------------------- writers
# The release-format writers live in the package (the synthetic release layouts use them).
from mtdense.datasets.synthetic.release_layouts import (  # noqa: E402,F401
    _mkdir_for, encode_normals_png, write_gray_png, write_labelmap_mat, write_palette_png,
    write_pascal_part_mat, write_rgb)


def random_unit_normals(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def save_npy(path: str, arr: np.ndarray) -> None:
    np.save(_mkdir_for(path), arr)


def write_split(root: str, rel: str, ids: Sequence[str]) -> None:
    path = _mkdir_for(os.path.join(root, rel))
    with open(path, 'w') as f:
        f.write(''.join(f'{i}\n' for i in ids))


# ---------------------------------------------------------------------------- masks
def box(y0: int, y1: int, x0: int, x1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def person_objects(kind: str) -> Tuple[List[Dict[str, Any]], np.ndarray]:
    """Pascal-Part objects and the expected 7-class parts map (person_fill = 0).

    kinds: ``'person'`` (a person with head/hair/luarm/rhand/lfoot/torso parts, part
    of the silhouette uncovered, plus a dog), ``'no_person'`` (a dog only),
    ``'two_persons'`` (one with parts, one without).
    """
    dog = dict(cls='dog', class_ind=12, mask=box(0, 6, 20, 32), parts=[])
    if kind == 'no_person':
        return [dog], np.full((H, W), 255, np.uint8)
    silhouette = box(2, 22, 2, 14)
    parts = [('head', box(2, 6, 4, 10)), ('hair', box(2, 3, 4, 10)), ('torso', box(6, 12, 4, 10)),
             ('luarm', box(6, 9, 10, 12)), ('rhand', box(12, 14, 2, 4)),
             ('lfoot', box(19, 22, 4, 7))]
    person = dict(cls='person', class_ind=15, mask=silhouette, parts=parts)
    expected = np.zeros((H, W), np.uint8)
    expected[box(2, 6, 4, 10)] = 1
    expected[box(6, 12, 4, 10)] = 2
    expected[box(6, 9, 10, 12)] = 3
    expected[box(12, 14, 2, 4)] = 4
    expected[box(19, 22, 4, 7)] = 6
    if kind == 'person':
        return [dog, person], expected
    if kind == 'two_persons':
        other = dict(cls='person', class_ind=15, mask=box(10, 20, 18, 30), parts=[])
        return [person, other, dog], expected
    raise ValueError(kind)


# ------------------------------------------------------------------------- datasets
def make_pascal_mt(root: str, splits: Optional[Dict[str, List[str]]] = None,
                   seed: int = 0) -> Dict[str, Dict[str, np.ndarray]]:
    """PASCAL_MT tree. Returns per id: img, semseg, parts, sal_raw, normals_rgb, labelmap."""
    from mtdense.datasets.base import voc_palette
    splits = PASCAL_SPLITS if splits is None else splits
    rng = np.random.default_rng(seed)
    truth: Dict[str, Dict[str, np.ndarray]] = {}
    kinds = ['person', 'no_person', 'two_persons']
    all_ids = [i for ids in splits.values() for i in ids]
    for k, img_id in enumerate(all_ids):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        write_rgb(os.path.join(root, 'JPEGImages', f'{img_id}.jpg'), img)
        semseg = rng.integers(0, 21, (H, W)).astype(np.uint8)
        semseg[:2] = 255
        # the first image's semseg lives only under semseg/pascal-context (fallback path)
        sub = 'pascal-context' if k == 0 else 'VOC12'
        write_palette_png(os.path.join(root, 'semseg', sub, f'{img_id}.png'), semseg,
                          voc_palette(256))
        objects, parts = person_objects(kinds[k % len(kinds)])
        write_pascal_part_mat(os.path.join(root, 'human_parts', f'{img_id}.mat'), img_id, objects)
        sal = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))
        sal[0, :4] = [126, 127, 128, 129]
        write_gray_png(os.path.join(root, 'sal_distill', f'{img_id}.png'), sal)
        normals_rgb = encode_normals_png(random_unit_normals(rng))
        write_rgb(os.path.join(root, 'normals_distill', f'{img_id}.png'), normals_rgb)
        # 440 wall & 284 person are NYU-shared; 2 aeroplane & 0 are not
        labelmap = rng.choice(np.array([0, 2, 284, 440]), size=(H, W))
        write_labelmap_mat(os.path.join(root, 'pascal-context', 'trainval', f'{img_id}.mat'),
                           labelmap)
        truth[img_id] = dict(img=img, semseg=semseg, parts=parts, sal_raw=sal,
                             normals_rgb=normals_rgb, labelmap=labelmap)
    for split, ids in splits.items():
        write_split(root, os.path.join('ImageSets', 'Context', f'{split}.txt'), ids)
    return truth


def make_nyud_mt(root: str, splits: Optional[Dict[str, List[str]]] = None,
                 seed: int = 1) -> Dict[str, Dict[str, np.ndarray]]:
    """NYUD_MT tree. Returns per id: img, seg_raw, depth, normals (as written)."""
    splits = NYUD_SPLITS if splits is None else splits
    rng = np.random.default_rng(seed)
    truth: Dict[str, Dict[str, np.ndarray]] = {}
    for ids in splits.values():
        for img_id in ids:
            img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            write_rgb(os.path.join(root, 'images', f'{img_id}.jpg'), img)
            seg_raw = rng.integers(0, 41, (H, W)).astype(np.uint8)
            seg_raw[0, :3] = [0, 1, 40]
            write_gray_png(os.path.join(root, 'segmentation', f'{img_id}.png'), seg_raw)
            depth = rng.uniform(0.5, 9.0, (H, W)).astype(np.float32)
            depth[:, :3] = 0.0
            save_npy(os.path.join(root, 'depth', f'{img_id}.npy'), depth)
            normals = (random_unit_normals(rng) * rng.uniform(0.5, 2.0, (H, W, 1))).astype(
                np.float32)  # not unit: the decoder renormalises
            normals[-2:] = 0.0
            save_npy(os.path.join(root, 'normals', f'{img_id}.npy'), normals)
            save_npy(os.path.join(root, 'edge', f'{img_id}.npy'),
                     (rng.uniform(size=(H, W)) > 0.9).astype(np.float32))
            truth[img_id] = dict(img=img, seg_raw=seg_raw, depth=depth, normals=normals)
    for split, ids in splits.items():
        write_split(root, os.path.join('gt_sets', f'{split}.txt'), ids)
    return truth


SYNTH_CLASSES = ['wall', 'floor', 'box', 'ball', 'person']
SYNTH_PALETTE = [[120, 120, 120], [80, 50, 50], [4, 200, 3], [204, 5, 255], [150, 5, 61]]


def make_synthetic(root: str, splits: Optional[Dict[str, List[str]]] = None, seed: int = 2,
                   meta: Optional[Dict[str, Any]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Synthetic layout of docs/architecture.md. Returns per id the arrays written."""
    splits = SYNTH_SPLITS if splits is None else splits
    rng = np.random.default_rng(seed)
    counts = {s: len(ids) for s, ids in splits.items()}
    if meta is None:
        meta = dict(classes=SYNTH_CLASSES, palette=SYNTH_PALETTE, size=[H, W], seed=seed,
                    counts=counts, camera=dict(fx=30.0, fy=30.0, cx=W / 2, cy=H / 2),
                    version=1)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'meta.json'), 'w') as f:
        json.dump(meta, f)
    truth: Dict[str, Dict[str, np.ndarray]] = {}
    for ids in splits.values():
        for k, img_id in enumerate(ids):
            img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            write_rgb(os.path.join(root, 'images', f'{img_id}.png'), img)
            seg_raw = rng.integers(0, len(SYNTH_CLASSES) + 1, (H, W)).astype(np.uint8)
            write_gray_png(os.path.join(root, 'segmentation', f'{img_id}.png'), seg_raw)
            parts = rng.integers(0, 7, (H, W)).astype(np.uint8)
            parts[:, :4] = 255
            if k == 1:
                parts[:] = 255  # no person
            write_gray_png(os.path.join(root, 'human_parts', f'{img_id}.png'), parts)
            sal = (rng.uniform(size=(H, W)) > 0.5).astype(np.uint8) * 255
            write_gray_png(os.path.join(root, 'saliency', f'{img_id}.png'), sal)
            normals = random_unit_normals(rng)
            normals[0] = 0.0
            save_npy(os.path.join(root, 'normals', f'{img_id}.npy'), normals)
            depth = rng.uniform(1.0, 5.0, (H, W)).astype(np.float32)
            depth[-1] = 0.0
            save_npy(os.path.join(root, 'depth', f'{img_id}.npy'), depth)
            truth[img_id] = dict(img=img, seg_raw=seg_raw, parts=parts, sal=sal,
                                 normals=normals, depth=depth)
    for split, ids in splits.items():
        write_split(root, os.path.join('gt_sets', f'{split}.txt'), ids)
    return truth
