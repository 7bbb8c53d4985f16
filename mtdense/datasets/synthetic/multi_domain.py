"""Procedural multi-domain classification data (shapes, textures, counts) in the ImageFolder
layout that :class:`~mtdense.datasets.ImageFolderDomainsDataset` reads like real data."""
from __future__ import annotations

import json
import os
import zlib
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence, Union

import cv2
import numpy as np

from mtdense.datasets.multi_domain import check_domains

__all__ = ['SYNTHETIC_DOMAINS', 'SYNTHETIC_VERSION', 'make_synthetic_multi_domain']

#: bumped whenever the synthetic generators change their output
SYNTHETIC_VERSION = 1


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
    domains = check_domains(domains, 'make_synthetic_multi_domain')
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
