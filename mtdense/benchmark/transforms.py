"""The benchmark's loading transform: decode each sample once, keep it in memory.

On the 2-core machine every training process loads its own data (``num_workers=0``: a
worker process would take the other training's core). Decoding the PNG/NPY files is
about half of the demo pipeline's time per sample; the benchmark's data sets are small
(a few hundred 96x128 scenes, ~0.3 MB each decoded), so they are decoded once per
process and served from memory (the benchmark's jobs fill the cache before the first
iteration and report how long that took). The random augmentations after loading still
run on every draw, so the samples a seed sees are unchanged.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mtdense.datasets.transforms import LoadMultiTaskAnnotations, LoadMultiTaskImage
from mtdense.registry import TRANSFORMS

__all__ = ['CachedMultiTaskLoad']


@TRANSFORMS.register_module()
class CachedMultiTaskLoad(BaseTransform):
    """``LoadMultiTaskImage`` + ``LoadMultiTaskAnnotations`` with a per-process cache.

    The first call for an image decodes it exactly as the two transforms do; later calls
    return copies of the cached arrays (later transforms may write into them).

    Args:
        tasks: as ``LoadMultiTaskAnnotations.tasks``.
        decoder: as ``LoadMultiTaskImage.decoder``.
        max_items: cache at most this many samples (None: no limit); beyond it samples are
            decoded on every call.
    """

    def __init__(self, tasks: Optional[Sequence[str]] = None, decoder: str = 'image',
                 max_items: Optional[int] = None) -> None:
        self.load_image = LoadMultiTaskImage(decoder=decoder)
        self.load_annotations = LoadMultiTaskAnnotations(tasks=tasks)
        self.max_items = max_items
        self._cache: Dict[str, Tuple[Dict[str, np.ndarray], List[str]]] = {}

    def transform(self, results: dict) -> dict:
        key = results.get('img_path')
        hit = self._cache.get(key) if key is not None else None
        if hit is None:
            results = self.load_annotations(self.load_image(results))
            arrays = {k: v for k, v in results.items()
                      if k == 'img' or k.startswith('gt_')}
            if key is not None and (self.max_items is None or len(self._cache) < self.max_items):
                self._cache[key] = ({k: v.copy() for k, v in arrays.items()},
                                    list(results['task_fields']))
            return results
        arrays, fields = hit
        for k, v in arrays.items():
            results[k] = v.copy()
        results['img_shape'] = results['ori_shape'] = arrays['img'].shape[:2]
        results['task_fields'] = list(fields)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(tasks={self.load_annotations.tasks}, '
                f'decoder={self.load_image.decoder!r}, max_items={self.max_items})')
