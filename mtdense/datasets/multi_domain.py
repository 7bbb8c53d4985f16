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
* ``mtdense.datasets.synthetic.make_synthetic_multi_domain`` writes a deterministic
  procedural multi-domain dataset in the ImageFolder layout (plus ``meta.json``); it
  is read by :class:`ImageFolderDomainsDataset` like real data.

Each data info is ``dict(img_path, img_id, sample_idx, gt_label, domain, domain_idx)``;
``metainfo`` has ``domains``, ``classes`` ``{domain: [names]}`` and ``num_classes``
``{domain: C}``. The pipeline is ``LoadMultiTaskImage`` (RGB) -> resizing ->
``PackDomainInputs`` (in ``transforms``). ``DomainBatchSampler`` (``samplers``) makes
every batch hold a single domain, so a multi-domain model runs one backbone stream per batch.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mtdense.registry import DATASETS

from .io import DataFileError

__all__ = [
    'DECATHLON_DOMAINS', 'MultiDomainDataset', 'DecathlonDataset', 'ImageFolderDomainsDataset',
    'IMAGE_EXTENSIONS', 'check_domains'
]

#: The ten Visual Decathlon domains (devkit names).
DECATHLON_DOMAINS = ('aircraft', 'cifar100', 'daimlerpedcls', 'dtd', 'gtsrb', 'imagenet12',
                     'omniglot', 'svhn', 'ucf101', 'vgg-flowers')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp')


def check_domains(domains: Sequence[str], owner: str) -> List[str]:
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
        self.domains = check_domains(domains, name)
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
