"""Writes synthetic samples in the on-disk layout of docs/architecture.md.

```
<root>/images/<id>.png         RGB uint8 (cv2 writes BGR, so channels are swapped first)
<root>/segmentation/<id>.png   uint8, 0 = unlabeled, k + 1 = class k (NYUD-v2 convention)
<root>/human_parts/<id>.png    uint8 part ids 0..6, 255 where ignored (all 255 if no person)
<root>/saliency/<id>.png       uint8 0 / 255
<root>/normals/<id>.npy        float32 (H, W, 3), camera frame, zero = invalid
<root>/depth/<id>.npy          float32 (H, W) metres, 0 = invalid
<root>/edge/<id>.png           uint8 0 / 255: one-pixel object, part and occlusion edges
<root>/gt_sets/{train,val}.txt one id per line
<root>/meta.json               written last: its presence marks a complete dataset
```
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

from mtdense.tasks import HUMAN_PARTS_CLASSES, IGNORE_INDEX
from .classes import CLASS_ID, CLASSES, GENERATOR_VERSION, PALETTE, SALIENT_CLASSES
from .edges import synthetic_edges
from .renderer import SyntheticSceneGenerator
from .scene import SceneConfig

LAYOUT_DIRS: Tuple[str, ...] = ('images', 'segmentation', 'human_parts', 'saliency', 'normals',
                                'depth', 'edge', 'gt_sets')
META_FILE = 'meta.json'
#: Settings that define a dataset: an existing directory made with other values is
#: never overwritten without ``overwrite=True``.
SETTING_KEYS: Tuple[str, ...] = ('version', 'size', 'seed', 'num_samples', 'val_fraction',
                                 'scene_config')


def sample_id(index: int, num: int) -> str:
    """Zero-padded id (``000042``; wider only for more than a million samples)."""
    return str(index).zfill(max(6, len(str(num - 1))))


def _imwrite(path: str, img: np.ndarray) -> None:
    # Level 1: about as small as the default for these images and twice as fast.
    if not cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f'could not write {path!r} (cv2.imwrite returned False)')


def write_sample(root: str, sid: str, sample: Dict[str, np.ndarray]) -> None:
    """Write one rendered sample (pipeline conventions) under ``root`` as ``sid``."""
    j = os.path.join
    _imwrite(j(root, 'images', f'{sid}.png'), cv2.cvtColor(sample['img'], cv2.COLOR_RGB2BGR))
    semseg = sample['semseg']
    seg_file = np.where(semseg == IGNORE_INDEX, 0, semseg.astype(np.int32) + 1).astype(np.uint8)
    _imwrite(j(root, 'segmentation', f'{sid}.png'), seg_file)
    _imwrite(j(root, 'human_parts', f'{sid}.png'), sample['human_parts'].astype(np.uint8))
    _imwrite(j(root, 'saliency', f'{sid}.png'), (sample['saliency'] * 255).astype(np.uint8))
    np.save(j(root, 'normals', f'{sid}.npy'), sample['normals'].astype(np.float32))
    np.save(j(root, 'depth', f'{sid}.npy'), sample['depth'].astype(np.float32))
    _imwrite(j(root, 'edge', f'{sid}.png'), synthetic_edges(sample) * np.uint8(255))


# Worker state: one generator per process, built once by the pool initializer.
_WORKER: Dict[str, object] = {}


def _init_worker(height: int, width: int, seed: int, scene_cfg: Dict, root: str,
                 num: int) -> None:
    _WORKER.update(gen=SyntheticSceneGenerator(height, width, seed, scene_cfg), root=root,
                   num=num)


def _make_one(index: int) -> Tuple[int, bool, np.ndarray]:
    gen: SyntheticSceneGenerator = _WORKER['gen']  # type: ignore[assignment]
    sample = gen(index)
    write_sample(_WORKER['root'], sample_id(index, _WORKER['num']), sample)  # type: ignore
    semseg = sample['semseg']
    pixels = np.bincount(semseg[semseg != IGNORE_INDEX].ravel(), minlength=len(CLASSES))
    has_person = bool(pixels[CLASS_ID['person']] > 0)
    return index, has_person, pixels


class SyntheticDatasetWriter:
    """Generates ``num`` samples of ``height`` x ``width`` into ``out_dir``.

    Args:
        out_dir: dataset root. A non-empty directory is only written to if its
            ``meta.json`` records the same settings (the result is then identical), or
            with ``overwrite=True``, which first deletes the layout's folders and
            ``meta.json`` (other files are left alone).
        num: number of samples (> 0).
        height, width: image size.
        seed: dataset seed; sample ``i`` depends only on ``(seed, i)``.
        val_fraction: share of samples listed in ``gt_sets/val.txt`` (the last ids);
            in [0, 1) and leaving at least one training sample.
        workers: processes used (>= 1); the output does not depend on it.
        scene_cfg: :class:`SceneConfig` fields overriding the defaults.
    """

    def __init__(self, out_dir: str, num: int, height: int, width: int, seed: int = 0,
                 val_fraction: float = 0.2, workers: int = 1,
                 scene_cfg: Union[SceneConfig, Dict, None] = None,
                 overwrite: bool = False) -> None:
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num <= 0:
            raise ValueError(f'SyntheticDatasetWriter: num must be a positive integer, '
                             f'got {num!r}')
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f'SyntheticDatasetWriter: val_fraction must be in [0, 1), '
                             f'got {val_fraction!r}')
        self.num_val = int(round(num * float(val_fraction)))
        if self.num_val >= num:
            raise ValueError(f'SyntheticDatasetWriter: val_fraction={val_fraction} of '
                             f'num={num} leaves no training sample')
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f'SyntheticDatasetWriter: workers must be an integer >= 1, '
                             f'got {workers!r}')
        # Validates size, seed and the scene config up front (clear errors, no files yet).
        self.generator = SyntheticSceneGenerator(height, width, seed, scene_cfg)
        self.out_dir = str(out_dir)
        self.num = int(num)
        self.val_fraction = float(val_fraction)
        self.workers = int(workers)
        self.overwrite = bool(overwrite)

    def settings(self) -> Dict[str, object]:
        cam = self.generator.camera
        return dict(version=GENERATOR_VERSION, size=[cam.height, cam.width],
                    seed=self.generator.seed, num_samples=self.num,
                    val_fraction=self.val_fraction,
                    scene_config=json.loads(json.dumps(self.generator.cfg.to_dict())))

    def prepare_dir(self) -> None:
        """Check ``out_dir`` against the rules above and create the layout folders."""
        root = self.out_dir
        if os.path.exists(root) and not os.path.isdir(root):
            raise FileExistsError(f'--out {root!r} exists and is not a directory')
        if os.path.isdir(root) and os.listdir(root):
            meta_path = os.path.join(root, META_FILE)
            if self.overwrite:
                for name in LAYOUT_DIRS:
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                if os.path.exists(meta_path):
                    os.remove(meta_path)
            elif not os.path.isfile(meta_path):
                raise FileExistsError(
                    f'output directory {root!r} is not empty and has no {META_FILE} (not a '
                    f'synthetic dataset, or an interrupted run); use --overwrite to replace '
                    f'its dataset folders, or choose another --out')
            else:
                with open(meta_path) as f:
                    old = json.load(f)
                new = self.settings()
                diff = {k: (old.get(k), new[k]) for k in SETTING_KEYS if old.get(k) != new[k]}
                if diff:
                    detail = '; '.join(f'{k}: existing {a!r} vs requested {b!r}'
                                       for k, (a, b) in diff.items())
                    raise FileExistsError(
                        f'output directory {root!r} holds a synthetic dataset made with '
                        f'different settings ({detail}); use --overwrite to replace it, or '
                        f'choose another --out')
                os.remove(meta_path)  # same settings: regenerate (identical result)
        for name in LAYOUT_DIRS:
            os.makedirs(os.path.join(root, name), exist_ok=True)

    def run(self, progress: bool = False) -> Dict[str, object]:
        """Generate and write everything; returns the ``meta.json`` content plus timing."""
        self.prepare_dir()
        gen = self.generator
        cam = gen.camera
        init_args = (cam.height, cam.width, gen.seed, gen.cfg.to_dict(), self.out_dir, self.num)
        has_person = np.zeros(self.num, dtype=bool)
        pixels = np.zeros(len(CLASSES), dtype=np.int64)
        start = time.perf_counter()
        if self.workers == 1:
            _init_worker(*init_args)
            results = map(_make_one, range(self.num))
            pool = None
        else:
            # fork (where available) shares the imported modules; the output does not
            # depend on the start method since every sample seeds its own generator.
            methods = mp.get_all_start_methods()
            ctx = mp.get_context('fork' if 'fork' in methods else 'spawn')
            pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=init_args)
            results = pool.imap_unordered(_make_one, range(self.num),
                                          chunksize=max(1, min(16, self.num // (4 * self.workers))))
        bar = None
        if progress:
            from mmengine.utils import ProgressBar  # rate and ETA, as mmengine's tools show
            bar = ProgressBar(self.num)
        try:
            for index, person, px in results:
                has_person[index] = person
                pixels += px
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.file.write('\n')
            if pool is not None:
                pool.close()
                pool.join()
        elapsed = time.perf_counter() - start

        ids = [sample_id(i, self.num) for i in range(self.num)]
        num_train = self.num - self.num_val
        splits = dict(train=ids[:num_train], val=ids[num_train:])
        for split, names in splits.items():
            with open(os.path.join(self.out_dir, 'gt_sets', f'{split}.txt'), 'w') as f:
                f.write(''.join(f'{n}\n' for n in names))
        meta = self.meta(splits, has_person, pixels)
        tmp = os.path.join(self.out_dir, META_FILE + '.tmp')
        with open(tmp, 'w') as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp, os.path.join(self.out_dir, META_FILE))
        return dict(meta, seconds=elapsed, images_per_s=self.num / max(elapsed, 1e-9))

    def meta(self, splits: Dict[str, List[str]], has_person: np.ndarray,
             pixels: np.ndarray) -> Dict[str, object]:
        ids = {n: i for i, n in enumerate(splits['train'] + splits['val'])}
        counts = dict(total=self.num, with_person=int(has_person.sum()),
                      pixels_per_class={c: int(p) for c, p in zip(CLASSES, pixels)})
        for split, names in splits.items():
            counts[split] = len(names)
            counts[f'{split}_with_person'] = int(sum(has_person[ids[n]] for n in names))
        return dict(
            self.settings(),
            name='mtdense-synthetic',
            tasks=['semseg', 'human_parts', 'saliency', 'normals', 'depth'],
            classes=list(CLASSES),
            palette=[list(c) for c in PALETTE],
            human_parts_classes=list(HUMAN_PARTS_CLASSES),
            salient_classes=list(SALIENT_CLASSES),
            counts=counts,
            camera=self.generator.camera.to_dict(),
            files=dict(
                images='images/<id>.png RGB uint8',
                segmentation='segmentation/<id>.png uint8: 0 = unlabeled, k + 1 = class k',
                human_parts='human_parts/<id>.png uint8: 0 background, 1..6 parts, '
                            '255 = ignored (whole map when no person is visible)',
                saliency='saliency/<id>.png uint8: 255 on salient classes, else 0',
                normals='normals/<id>.npy float32 (H, W, 3) camera frame, zero = invalid',
                depth='depth/<id>.npy float32 (H, W) metres along the camera z axis, 0 = invalid',
                gt_sets='gt_sets/{train,val}.txt: one id per line; val = the last ids'),
            seed_rule='sample i is rendered from np.random.default_rng([seed, i])',
        )


__all__ = ['SyntheticDatasetWriter', 'write_sample', 'sample_id', 'LAYOUT_DIRS', 'META_FILE',
]
