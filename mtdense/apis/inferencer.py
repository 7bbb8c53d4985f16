"""``MTDenseInferencer``: mmseg-style inference on paths, arrays, lists and folders.

    from mtdense.apis import MTDenseInferencer
    inferencer = MTDenseInferencer('vmt/vmt_swin-t_pascal-mt', weights='work_dirs/.../iter_46800.pth')
    results = inferencer('photos/', batch_size=8, out_dir='outputs', save_raw=True)
    for result in inferencer.stream(['a.jpg', 'b.jpg']):   # one result at a time
        ...

The model and its inference pipeline are built once. Inputs are read as displayed (EXIF
orientation applied to files); every result holds per-task arrays at the input's size
(``semseg`` / ``human_parts`` int64 labels, ``saliency`` float32 probability, ``normals``
float32 unit vectors (H, W, 3), ``depth`` float32 metres) and the input's name. Images are
batched ``batch_size`` at a time, one network batch per input size (a prediction never
depends on its batch mates). With ``out_dir``: ``<name>.png`` panels (``save_panels``) and
``<name>.npz`` compressed raw outputs (``save_raw``: labels uint8 where the classes fit,
maps float16).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from mtdense.structures import compact_raw  # noqa: F401  (also exported here)

from .inference import (ImageInput, build_inference_pipeline, init_model, predict_prepared,
                        prediction_to_numpy, prepare_image)

__all__ = ['MTDenseInferencer', 'IMAGE_EXTENSIONS', 'list_inputs', 'compact_raw']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
Inputs = Union[ImageInput, Sequence[ImageInput]]


def list_inputs(inputs: Inputs) -> List[Tuple[str, ImageInput]]:
    """``(name, path or array)`` for a path, a folder (its images, sorted), an array or a list."""
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    out: List[Tuple[str, ImageInput]] = []
    for k, item in enumerate(items):
        if isinstance(item, np.ndarray):
            out.append((f'array_{k}', item))
        elif isinstance(item, (str, os.PathLike)) and osp.isdir(item):
            files = sorted(osp.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS)
                           and osp.isfile(osp.join(item, f)))
            if not files:
                raise FileNotFoundError(f'folder {os.fspath(item)!r} holds no image files '
                                        f'(looked for {", ".join(IMAGE_EXTENSIONS)})')
            out += [(osp.splitext(osp.basename(f))[0], f) for f in files]
        elif isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if not osp.isfile(path):
                raise FileNotFoundError(f'input {path!r} is neither an image file nor a folder')
            out.append((osp.splitext(osp.basename(path))[0], path))
        else:
            raise TypeError(f'input {k}: expected an image path, a folder or an RGB uint8 array, '
                            f'got {type(item).__name__}')
    seen: Dict[str, ImageInput] = {}
    for name, img in out:
        if name in seen:  # two inputs would write the same output files
            raise ValueError(f'{seen[name]} and {img} would both be written as {name}.png; '
                             'rename one of them')
        seen[name] = img
    return out


class MTDenseInferencer:
    """Build once, predict many.

    Args:
        model: a config name of the zoo (``vmt/vmt_swin-t_pascal-mt``), a config path or an
            mmengine ``Config``.
        weights: checkpoint (strict, ``weights_only`` loading); None: the config's weights.
        device: torch device.
        cfg_options: config overrides.
    """

    def __init__(self, model: Any, weights: Optional[str] = None, device: str = 'cpu',
                 cfg_options: Optional[dict] = None) -> None:
        self.model = init_model(model, weights, device=device, cfg_options=cfg_options)
        self.tasks = list(self.model.tasks)
        # built once (not per call): arrays and files have different loaders
        self.pipelines = {True: build_inference_pipeline(self.model.cfg, from_array=True),
                          False: build_inference_pipeline(self.model.cfg, from_array=False)}
        self._visualizer = None

    # ----------------------------------------------------------------- running
    def __call__(self, inputs: Inputs, batch_size: int = 1, out_dir: Optional[str] = None,
                 save_panels: bool = True, save_raw: bool = False,
                 on_error: str = 'raise') -> List[Dict[str, Any]]:
        """All results, in input order (see :meth:`stream`)."""
        return list(self.stream(inputs, batch_size, out_dir, save_panels, save_raw, on_error))

    def stream(self, inputs: Inputs, batch_size: int = 1, out_dir: Optional[str] = None,
               save_panels: bool = True, save_raw: bool = False,
               on_error: str = 'raise') -> Iterator[Dict[str, Any]]:
        """Yield ``dict(name=..., path=..., predictions={task: array}, files=[...])`` per
        input as soon as its batch is done; images are decoded batch by batch.

        ``on_error='skip'``: an image that cannot be read yields ``dict(name, path, error)``
        and the others go on; ``'raise'`` (default) raises, naming the file.
        """
        if int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        items = list_inputs(inputs)
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
        for start in range(0, len(items), int(batch_size)):
            chunk = items[start:start + int(batch_size)]
            results: List[Optional[Dict[str, Any]]] = [None] * len(chunk)
            ok, prepared = [], []
            for k, (name, img) in enumerate(chunk):
                try:
                    prepared.append(prepare_image(img, start + k, self.pipelines))
                    ok.append(k)
                except (OSError, ValueError) as e:  # DataFileError is a ValueError
                    if on_error == 'raise':
                        raise
                    results[k] = dict(name=name, path=img if isinstance(img, str) else None,
                                      error=str(e))
            samples = predict_prepared(self.model, prepared) if prepared else []
            for k, sample in zip(ok, samples):
                name, img = chunk[k]
                preds = prediction_to_numpy(sample, self.tasks)
                results[k] = dict(name=name, path=img if isinstance(img, str) else None,
                                  predictions=preds, files=[])
                if out_dir is not None:
                    results[k]['files'] = self._write(out_dir, name, img, preds, save_panels,
                                                      save_raw)
            yield from results  # input order, errors included

    # ----------------------------------------------------------------- outputs
    def _write(self, out_dir: str, name: str, img: ImageInput, preds: Dict[str, np.ndarray],
               save_panels: bool, save_raw: bool) -> List[str]:
        files = []
        if save_panels:
            from mtdense.datasets.io import decode
            from mtdense.visualization.visualizer import MultiTaskVisualizer, write_rgb_png
            if self._visualizer is None:
                self._visualizer = MultiTaskVisualizer(name=f'mtdense_inferencer_{id(self)}')
                self._visualizer.dataset_meta = self.model.dataset_meta
            rgb = img if isinstance(img, np.ndarray) else decode('image_exif', img)
            path = osp.join(out_dir, f'{name}.png')
            write_rgb_png(path, self._visualizer.draw_predictions(rgb, preds))
            files.append(path)
        if save_raw:
            path = osp.join(out_dir, f'{name}.npz')
            np.savez_compressed(path, **compact_raw(preds))
            files.append(path)
        return files
