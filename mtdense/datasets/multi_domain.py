"""Multi-domain classification data (Visual Decathlon protocol).

Readers (mmengine ``BaseDataset``; one dataset holds every domain of a split):

* :class:`DecathlonDataset` — the Visual Decathlon devkit layout: COCO-style
  annotation files ``<data_root>/annotations/<domain>_<split>.json`` with
  ``images`` (``id``, ``file_name`` relative to ``data_root``), ``annotations``
  (``image_id``, ``category_id``; one per image) and ``categories`` (``id``,
  ``name``). Labels are the categories sorted by id, 0..C-1. The stripped test
  files (``split='test_stripped'``) have no annotations: allowed with
  ``test_mode=True`` (label -1).
* :class:`ImageFolderDomainsDataset` — ``<data_root>/<domain>/<split>/<class>/<image>``
  (e.g. the ImageNet-to-Sketch release). Class names are the sub-folders of
  ``<domain>/<class_split>`` (default ``train``), sorted, so labels agree across
  splits.
* :func:`make_synthetic_multi_domain` writes a deterministic procedural
  multi-domain dataset in the ImageFolder layout (plus ``meta.json``); it is read
  by :class:`ImageFolderDomainsDataset` like real data.

Each data info is ``dict(img_path, img_id, sample_idx, gt_label, domain, domain_idx)``;
``metainfo`` has ``domains``, ``classes`` ``{domain: [names]}`` and ``num_classes``
``{domain: C}``. The pipeline is ``LoadMultiTaskImage`` (RGB) -> resizing ->
:class:`PackDomainInputs`. :class:`DomainBatchSampler` makes every batch hold a
single domain, so a multi-domain model runs one backbone stream per batch.
"""
from __future__ import annotations

import json
import os
import zlib
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement
from torch.utils.data import Sampler

from mtdense.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS

from .io import DataFileError

__all__ = [
    'DECATHLON_DOMAINS', 'MultiDomainDataset', 'DecathlonDataset', 'ImageFolderDomainsDataset',
    'PackDomainInputs', 'DomainBatchSampler', 'SYNTHETIC_DOMAINS', 'make_synthetic_multi_domain',
    'IMAGE_EXTENSIONS'
]

#: The ten Visual Decathlon domains (devkit names).
DECATHLON_DOMAINS = ('aircraft', 'cifar100', 'daimlerpedcls', 'dtd', 'gtsrb', 'imagenet12',
                     'omniglot', 'svhn', 'ucf101', 'vgg-flowers')

#: bumped whenever the synthetic generators change their output
SYNTHETIC_VERSION = 1

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp')


def _check_domains(domains: Sequence[str], owner: str) -> List[str]:
    domains = list(domains)
    if not domains or len(set(domains)) != len(domains) or \
            not all(isinstance(d, str) and d for d in domains):
        raise ValueError(f'{owner}: domains must be a non-empty list of unique names, '
                         f'got {domains}')
    return domains


class MultiDomainDataset(BaseDataset):
    """Base: subclasses implement :meth:`read_domain` -> (class names, samples).

    Args:
        data_root: dataset root folder.
        domains: domain names (order fixes ``domain_idx``).
        split: split name.
        pipeline, test_mode, indices, lazy_init, serialize_data, max_refetch: as in
            :class:`mmengine.dataset.BaseDataset`.
    """

    def __init__(self, data_root: str, domains: Sequence[str], split: str = 'train',
                 pipeline: Sequence[Union[dict, Callable]] = (), test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None, lazy_init: bool = False,
                 max_refetch: int = 1000, serialize_data: bool = True) -> None:
        name = type(self).__name__
        if not data_root or not os.path.isdir(data_root):
            raise DataFileError(f'{name}: data_root {data_root!r} is not a directory')
        if not isinstance(split, str) or not split:
            raise ValueError(f'{name}: split must be a non-empty string, got {split!r}')
        self.split = split
        self.domains = _check_domains(domains, name)
        self.data_root = data_root
        self._classes: Dict[str, List[str]] = OrderedDict()
        self._samples: Dict[str, List[tuple]] = OrderedDict()
        for d in self.domains:
            classes, samples = self.read_domain(d, test_mode)
            if not classes:
                raise DataFileError(f'{name}: domain {d!r} has no classes')
            if not samples:
                raise DataFileError(f'{name}: domain {d!r} split {split!r} has no images')
            self._classes[d] = list(classes)
            self._samples[d] = samples
        metainfo = dict(domains=list(self.domains), classes=dict(self._classes),
                        num_classes={d: len(c) for d, c in self._classes.items()})
        super().__init__(ann_file='', metainfo=metainfo, data_root=data_root,
                         pipeline=list(pipeline), test_mode=test_mode, indices=indices,
                         lazy_init=lazy_init, max_refetch=max_refetch,
                         serialize_data=serialize_data)

    def read_domain(self, domain: str, test_mode: bool):
        """``(class_names, [(img_path, label, img_id), ...])`` of one domain."""
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        data_list = []
        for domain_idx, d in enumerate(self.domains):
            for img_path, label, img_id in self._samples[d]:
                data_list.append(dict(img_path=img_path, img_id=img_id, gt_label=int(label),
                                      domain=d, domain_idx=domain_idx,
                                      sample_idx=len(data_list)))
        return data_list

    def domain_indices(self) -> Dict[str, List[int]]:
        """Dataset indices of every domain."""
        out: Dict[str, List[int]] = {d: [] for d in self.domains}
        for i in range(len(self)):
            out[self.get_data_info(i)['domain']].append(i)
        return out

    def __repr__(self) -> str:
        n = len(self) if self._fully_initialized else '?'
        return (f'{type(self).__name__}(data_root={self.data_root!r}, split={self.split!r}, '
                f'domains={self.domains}, num_samples={n})')


@DATASETS.register_module()
class DecathlonDataset(MultiDomainDataset):
    """Visual Decathlon devkit annotations (see the module docstring).

    Args:
        data_root: the decathlon root (holds ``annotations/`` and the image folders).
        domains: default the ten Decathlon domains.
        split: ``train`` | ``val`` | ``test_stripped`` (any ``<domain>_<split>.json``).
        ann_dir: annotation folder relative to ``data_root``.
        check_files: check that every image file exists while listing.
    """

    def __init__(self, data_root: str, domains: Sequence[str] = DECATHLON_DOMAINS,
                 split: str = 'train', ann_dir: str = 'annotations', check_files: bool = True,
                 **kwargs) -> None:
        self.ann_dir = ann_dir
        self.check_files = bool(check_files)
        super().__init__(data_root, domains, split, **kwargs)

    def ann_path(self, domain: str) -> str:
        return os.path.join(self.data_root, self.ann_dir, f'{domain}_{self.split}.json')

    def read_domain(self, domain: str, test_mode: bool):
        path = self.ann_path(domain)
        if not os.path.isfile(path):
            folder = os.path.dirname(path)
            found = sorted(f for f in os.listdir(folder) if f.endswith('.json')) \
                if os.path.isdir(folder) else []
            raise DataFileError(f'{path}: annotation file of domain {domain!r} split '
                                f'{self.split!r} not found (found: {found[:12]})')
        try:
            with open(path, encoding='utf-8') as f:
                ann = json.load(f)
        except (OSError, ValueError) as e:
            raise DataFileError(f'{path}: cannot be read as JSON: {e}') from e
        found = sorted(ann) if isinstance(ann, dict) else type(ann).__name__
        for key in ('images', 'categories'):
            if not isinstance(ann, dict) or not isinstance(ann.get(key), list):
                raise DataFileError(f'{path}: expected a COCO-style dict with a list '
                                    f'"{key}" (found: {found})')
        try:
            cats = sorted(ann['categories'], key=lambda c: c['id'])
            cat_to_label = {c['id']: i for i, c in enumerate(cats)}
            classes = [str(c.get('name', c['id'])) for c in cats]
        except (KeyError, TypeError) as e:
            raise DataFileError(f'{path}: every category needs an "id" ({e})') from e
        if len(cat_to_label) != len(cats):
            raise DataFileError(f'{path}: duplicate category ids')
        anns = ann.get('annotations') or []
        labels: Dict[Any, int] = {}
        for a in anns:
            try:
                img_id, cat = a['image_id'], a['category_id']
            except (KeyError, TypeError) as e:
                raise DataFileError(f'{path}: annotation {a!r} lacks image_id/category_id') from e
            if cat not in cat_to_label:
                raise DataFileError(f'{path}: annotation of image {img_id!r} has category_id '
                                    f'{cat!r}, not among the {len(cats)} categories')
            if img_id in labels:
                raise DataFileError(f'{path}: image {img_id!r} has more than one annotation')
            labels[img_id] = cat_to_label[cat]
        if not anns and not test_mode:
            raise DataFileError(f'{path}: has no annotations (a stripped test file?); use '
                                'test_mode=True to read images without labels')
        samples = []
        for im in ann['images']:
            try:
                img_id, file_name = im['id'], im['file_name']
            except (KeyError, TypeError) as e:
                raise DataFileError(f'{path}: image entry {im!r} lacks id/file_name') from e
            if anns and img_id not in labels:
                raise DataFileError(f'{path}: image {img_id!r} ({file_name}) has no annotation')
            img_path = os.path.join(self.data_root, file_name)
            if self.check_files and not os.path.isfile(img_path):
                raise DataFileError(f'{img_path}: image {img_id!r} of {path} not found')
            samples.append((img_path, labels.get(img_id, -1), f'{domain}/{img_id}'))
        return classes, samples


@DATASETS.register_module()
class ImageFolderDomainsDataset(MultiDomainDataset):
    """``<data_root>/<domain>/<split>/<class>/<image>`` (see the module docstring).

    Args:
        data_root: root folder holding one folder per domain.
        domains: domain folder names; None: every sub-folder of ``data_root``
            (sorted), or ``meta.json``'s ``domains`` when present (synthetic data).
        split: split folder name.
        class_split: the split whose class folders define the labels.
    """

    def __init__(self, data_root: str, domains: Optional[Sequence[str]] = None,
                 split: str = 'train', class_split: str = 'train', **kwargs) -> None:
        self.class_split = class_split
        if domains is None:
            domains = self._discover_domains(data_root)
        super().__init__(data_root, domains, split, **kwargs)

    @staticmethod
    def _discover_domains(data_root: str) -> List[str]:
        if not os.path.isdir(data_root):
            raise DataFileError(f'ImageFolderDomainsDataset: data_root {data_root!r} is not a '
                                'directory')
        meta = os.path.join(data_root, 'meta.json')
        if os.path.isfile(meta):
            with open(meta, encoding='utf-8') as f:
                return list(json.load(f)['domains'])
        return sorted(d for d in os.listdir(data_root)
                      if os.path.isdir(os.path.join(data_root, d)))

    def read_domain(self, domain: str, test_mode: bool):
        class_dir = os.path.join(self.data_root, domain, self.class_split)
        split_dir = os.path.join(self.data_root, domain, self.split)
        for folder, what in ((class_dir, f'class split {self.class_split!r}'),
                             (split_dir, f'split {self.split!r}')):
            if not os.path.isdir(folder):
                raise DataFileError(f'{folder}: folder of domain {domain!r} {what} not found '
                                    '(expected <root>/<domain>/<split>/<class>/<image>)')
        classes = sorted(c for c in os.listdir(class_dir)
                         if os.path.isdir(os.path.join(class_dir, c)))
        index = {c: i for i, c in enumerate(classes)}
        samples = []
        for c in sorted(os.listdir(split_dir)):
            folder = os.path.join(split_dir, c)
            if not os.path.isdir(folder):
                continue
            if c not in index:
                raise DataFileError(f'{folder}: class {c!r} of split {self.split!r} is not a class '
                                    f'of {class_dir} ({len(classes)} classes)')
            for fname in sorted(os.listdir(folder)):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    samples.append((os.path.join(folder, fname), index[c],
                                    f'{domain}/{c}/{os.path.splitext(fname)[0]}'))
        return classes, samples


@TRANSFORMS.register_module()
class PackDomainInputs(BaseTransform):
    """Pack an RGB uint8 image and its label for a multi-domain classifier.

    Gives ``inputs``: uint8 tensor (3, H, W) and ``data_samples``: a
    ``BaseDataElement`` with ``gt_label`` (int64 scalar tensor) and metainfo
    ``domain``, ``domain_idx``, ``img_path``, ``img_id``, ``ori_shape``, ``img_shape``.
    """

    META_KEYS = ('domain', 'domain_idx', 'img_path', 'img_id', 'ori_shape', 'img_shape')

    def transform(self, results: dict) -> dict:
        for key in ('img', 'domain', 'gt_label'):
            if key not in results:
                raise KeyError(f'PackDomainInputs: results has no {key!r} '
                               f'(keys: {sorted(results)})')
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'PackDomainInputs: {results.get("img_path")}: expected an (H, W, 3) '
                             f'image, got {getattr(img, "shape", type(img))}')
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.META_KEYS if k in results})
        sample.gt_label = torch.tensor(int(results['gt_label']), dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)


@DATA_SAMPLERS.register_module()
class DomainBatchSampler(Sampler):
    """Batches that each hold samples of one domain.

    Indices come from ``sampler`` in its order and are buffered per domain; a
    domain's buffer is emitted when it reaches ``batch_size``. At the end the
    incomplete buffers are emitted (or dropped with ``drop_last``).

    Args:
        sampler: index sampler whose ``dataset`` is a :class:`MultiDomainDataset`.
        batch_size: samples per batch.
        drop_last: drop each domain's last incomplete batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if int(batch_size) <= 0:
            raise ValueError(f'DomainBatchSampler: batch_size must be positive, got {batch_size}')
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None or not hasattr(dataset, 'get_data_info'):
            raise TypeError('DomainBatchSampler: the sampler must expose the dataset '
                            '(mmengine DefaultSampler/InfiniteSampler do)')
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        self._domain_of = [dataset.get_data_info(i)['domain'] for i in range(len(dataset))]

    def __iter__(self) -> Iterator[List[int]]:
        buffers: Dict[str, List[int]] = OrderedDict()
        for idx in self.sampler:
            buf = buffers.setdefault(self._domain_of[idx], [])
            buf.append(idx)
            if len(buf) == self.batch_size:
                yield list(buf)
                buf.clear()
        if not self.drop_last:
            for buf in buffers.values():
                if buf:
                    yield list(buf)

    def __len__(self) -> int:
        counts: Dict[str, int] = {}
        for idx in self.sampler:
            counts[self._domain_of[idx]] = counts.get(self._domain_of[idx], 0) + 1
        if self.drop_last:
            return sum(c // self.batch_size for c in counts.values())
        return sum(-(-c // self.batch_size) for c in counts.values())


# ------------------------------------------------------------------ synthetic data
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(60, 190, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return np.clip(base + noise, 0, 255)


def _contrast_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    mean = bg.reshape(-1, 3).mean(0)
    c = rng.uniform(0, 255, size=3)
    # push the colour away from the background mean so the pattern is visible
    return np.where(c > mean, np.maximum(c, mean + 60), np.minimum(c, mean - 60)).clip(0, 255)


def _draw_shape(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """Domain 'shapes': class = disk, square, triangle, cross, ring, bar (random pose/colour)."""
    img = _background(rng, size)
    col = _contrast_colour(rng, img)
    r = rng.uniform(0.22, 0.34) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = xx - cx, yy - cy
    if cls == 0:
        mask = dx ** 2 + dy ** 2 <= r ** 2
    elif cls == 1:
        mask = (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
    elif cls == 2:
        mask = (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    elif cls == 3:
        mask = ((np.abs(dx) <= r * 0.25) & (np.abs(dy) <= r)) | \
               ((np.abs(dy) <= r * 0.25) & (np.abs(dx) <= r))
    elif cls == 4:
        d2 = dx ** 2 + dy ** 2
        mask = (d2 <= r ** 2) & (d2 >= (0.55 * r) ** 2)
    else:
        mask = (np.abs(dy) <= r * 0.2) & (np.abs(dx) <= r)
    img[mask] = col
    return img


def _draw_texture(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """Domain 'textures': class = horizontal / vertical / diagonal stripes, checker, dots, rings."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = rng.uniform(5, 9)
    phase = rng.uniform(0, period)
    if cls == 0:
        v = np.sin(2 * np.pi * (yy + phase) / period)
    elif cls == 1:
        v = np.sin(2 * np.pi * (xx + phase) / period)
    elif cls == 2:
        v = np.sin(2 * np.pi * (xx + yy + phase) / (period * 1.4))
    elif cls == 3:
        v = np.sin(np.pi * (xx + phase) / period) * np.sin(np.pi * (yy + phase) / period)
    elif cls == 4:
        v = (np.cos(2 * np.pi * (xx + phase) / period)
             + np.cos(2 * np.pi * (yy + phase) / period) - 1)
    else:
        cx, cy = rng.uniform(0, size, size=2)
        v = np.sin(2 * np.pi * np.hypot(xx - cx, yy - cy) / period)
    c1, c2 = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    c2 = np.where(np.abs(c2 - c1) < 80, (c1 + 128) % 256, c2)
    t = (v > 0).astype(np.float64)[..., None]
    return np.clip(t * c1 + (1 - t) * c2 + rng.normal(0, 8, size=(size, size, 3)), 0, 255)


def _draw_count(rng: np.random.Generator, cls: int, size: int) -> np.ndarray:
    """Domain 'counts': class k = k + 1 small blobs at random places."""
    img = _background(rng, size)
    col = _contrast_colour(rng, img)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    r = size * 0.08
    centres: List[np.ndarray] = []
    while len(centres) < cls + 1:
        c = rng.uniform(r + 1, size - r - 1, size=2)
        if all(np.hypot(*(c - o)) > 2.6 * r for o in centres):
            centres.append(c)
    for cx, cy in centres:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2] = col
    return img


#: domain name -> (generator(rng, class, size) -> float image, max classes)
SYNTHETIC_DOMAINS: Dict[str, tuple] = OrderedDict(
    shapes=(_draw_shape, 6), textures=(_draw_texture, 6), counts=(_draw_count, 5))


def make_synthetic_multi_domain(root: str, domains: Sequence[str] = ('shapes', 'textures',
                                                                     'counts'),
                                num_classes: Union[int, Mapping[str, int]] = 4,
                                per_class: Mapping[str, int] = dict(train=8, val=4),
                                size: int = 32, seed: int = 0) -> dict:
    """Write a deterministic multi-domain dataset in the ImageFolder layout.

    ``<root>/<domain>/<split>/<class_k>/<i>.png`` (RGB) and ``<root>/meta.json``
    (domains, classes, counts, size, seed, version). The same arguments give
    byte-identical files. Returns the meta dict.
    """
    domains = _check_domains(domains, 'make_synthetic_multi_domain')
    unknown = [d for d in domains if d not in SYNTHETIC_DOMAINS]
    if unknown:
        raise ValueError(f'make_synthetic_multi_domain: unknown domains {unknown}; available '
                         f'{list(SYNTHETIC_DOMAINS)}')
    if int(size) < 16:
        raise ValueError(f'make_synthetic_multi_domain: size must be >= 16, got {size}')
    n_cls = {d: int(num_classes[d] if isinstance(num_classes, Mapping) else num_classes)
             for d in domains}
    for d, n in n_cls.items():
        if not 2 <= n <= SYNTHETIC_DOMAINS[d][1]:
            raise ValueError(f'make_synthetic_multi_domain: domain {d!r} supports 2..'
                             f'{SYNTHETIC_DOMAINS[d][1]} classes, got {n}')
    if not per_class or any(int(v) <= 0 for v in per_class.values()):
        raise ValueError(f'make_synthetic_multi_domain: per_class must map splits to positive '
                         f'counts, got {dict(per_class)}')
    classes = {d: [f'class_{k}' for k in range(n_cls[d])] for d in domains}
    for d in domains:
        draw = SYNTHETIC_DOMAINS[d][0]
        for split, count in sorted(per_class.items()):
            for k, cname in enumerate(classes[d]):
                folder = os.path.join(root, d, split, cname)
                os.makedirs(folder, exist_ok=True)
                # one stream per (domain, split, class), independent of the other domains/splits
                key = zlib.crc32(f'{d}/{split}'.encode())
                rng = np.random.default_rng([seed, key, k, SYNTHETIC_VERSION])
                for i in range(int(count)):
                    img = draw(rng, k, int(size)).round().astype(np.uint8)
                    path = os.path.join(folder, f'{i:05d}.png')
                    if not cv2.imwrite(path, img[:, :, ::-1]):
                        raise OSError(f'make_synthetic_multi_domain: cannot write {path}')
    meta = dict(domains=list(domains), classes=classes, per_class=dict(per_class),
                size=int(size), seed=int(seed), version=SYNTHETIC_VERSION)
    with open(os.path.join(root, 'meta.json'), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1)
    return meta

