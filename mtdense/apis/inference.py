"""Python inference API: build a model from a config + checkpoint, predict on images.

Example::

    from mtdense.apis import init_model, inference_model
    model = init_model('configs/my_exp.py', 'work_dirs/my_exp/iter_40000.pth', device='cuda')
    out = inference_model(model, 'demo.jpg')      # or an RGB uint8 (H, W, 3) array
    out['semseg']     # (H, W) int64 class ids
    out['saliency']   # (H, W) float32 probability
    out['normals']    # (H, W, 3) float32 unit vectors (camera frame)
    out['depth']      # (H, W) float32 metres

Outputs have the input image's size. Arrays passed in must be **RGB** uint8
(OpenCV's ``cv2.imread`` gives BGR: convert with ``img[..., ::-1]``).
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import BaseTransform, Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mtdense.datasets.transforms import LoadMultiTaskImageFromArray  # noqa: F401  (re-export)
from mtdense.registry import DATASETS, MODELS, TRANSFORMS
from mtdense.structures import prediction_to_numpy  # noqa: F401  (re-export)
from mtdense.tasks import get_task

__all__ = ['LoadMultiTaskImageFromArray', 'init_model', 'inference_model',
           'build_inference_pipeline', 'dataset_meta_from_config', 'prediction_to_numpy']

ImageInput = Union[str, os.PathLike, np.ndarray]

# Transforms that read ground truth: not part of an inference pipeline.
ANNOTATION_TRANSFORMS = ('LoadMultiTaskAnnotations',)
IMAGE_LOADERS = ('LoadMultiTaskImage',)


def _load_config(config: Union[str, os.PathLike, Config],
                 cfg_options: Optional[dict]) -> Config:
    if isinstance(config, (str, os.PathLike)):
        from mtdense.utils.config_names import resolve_config
        if not osp.isfile(config) and not os.fspath(config).endswith('.py'):
            config = resolve_config(os.fspath(config))  # a zoo name, e.g. vmt/vmt_swin-t_pascal-mt
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        cfg = Config.fromfile(os.fspath(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'config {cfg.filename} has no `model` dict')
    return cfg


def _test_dataset_cfg(cfg: Config) -> Optional[dict]:
    """The innermost dataset config of ``test_dataloader`` (through dataset wrappers)."""
    ds = cfg.get('test_dataloader', {}) or {}
    ds = ds.get('dataset')
    while isinstance(ds, dict) and 'pipeline' not in ds and isinstance(ds.get('dataset'), dict):
        ds = ds['dataset']  # RepeatDataset-style wrappers
    return ds if isinstance(ds, dict) else None


def dataset_meta_from_config(cfg: Config) -> Dict[str, Any]:
    """Dataset metainfo (``classes``, ``palette``, ...) as the config's test dataset defines it.

    Tried in order: an explicit ``metainfo`` in the dataset config; the dataset
    class's ``METAINFO``; the metainfo of the dataset built without loading its
    sample list (needs ``data_root``, e.g. the synthetic ``meta.json``). Returns
    ``{}`` (with a warning) when none is available.
    """
    ds = _test_dataset_cfg(cfg)
    if ds is None:
        warnings.warn(f'config {cfg.filename} has no test_dataloader.dataset; dataset metainfo '
                      '(class names, palette) unknown')
        return {}
    if isinstance(ds.get('metainfo'), dict) and ds['metainfo'].get('classes'):
        return dict(ds['metainfo'])
    cls = DATASETS.get(ds.get('type')) if isinstance(ds.get('type'), str) else None
    meta = dict(getattr(cls, 'METAINFO', {}) or {}) if cls is not None else {}
    if meta.get('classes'):
        return meta
    if cls is not None:
        try:
            built = DATASETS.build(dict(copy.deepcopy(ds), pipeline=[], lazy_init=True))
            return dict(built.metainfo)
        except Exception as e:  # noqa: BLE001 -- data may simply not be on this machine
            warnings.warn(f'could not read the dataset metainfo of {ds.get("type")} '
                          f'(data_root={ds.get("data_root")!r}): {e}. Class names and palette are '
                          'unknown; default colours will be used')
    return {}


def build_inference_pipeline(cfg: Config, from_array: bool = False) -> Compose:
    """The config's test pipeline without annotation loading.

    With ``from_array`` the image loader is replaced by
    :class:`LoadMultiTaskImageFromArray` (the image is given in ``results['img']``).
    """
    ds = _test_dataset_cfg(cfg)
    if ds is None or not ds.get('pipeline'):
        raise KeyError(f'config {cfg.filename} has no test_dataloader.dataset.pipeline to build '
                       'the inference pipeline from')
    steps: List[Union[dict, BaseTransform]] = []
    n_loaders = 0
    for t in ds['pipeline']:
        t = copy.deepcopy(t)
        kind = t.get('type') if isinstance(t, dict) else type(t).__name__
        if kind in ANNOTATION_TRANSFORMS:
            continue
        if kind in IMAGE_LOADERS:
            n_loaders += 1
            if from_array:
                t = LoadMultiTaskImageFromArray()
            elif isinstance(t, dict) and t.get('decoder', 'image') == 'image':
                # photos are shown in their EXIF orientation; a dataset's stored pixel grid
                # (which its label files follow) does not matter at inference
                t['decoder'] = 'image_exif'
        steps.append(t)
    if n_loaders != 1:
        raise ValueError(f'config {cfg.filename}: test_dataloader.dataset.pipeline must contain '
                         f'exactly one of {IMAGE_LOADERS} (found {n_loaders}); got '
                         f'{[s.get("type") if isinstance(s, dict) else s for s in ds["pipeline"]]}')
    built = [TRANSFORMS.build(s) if isinstance(s, dict) else s for s in steps]
    return Compose(built)


def fill_num_classes(cfg: Config, dataset_meta: Dict[str, Any]) -> None:
    """Set ``model.num_classes`` from the dataset classes when the config leaves it unset."""
    model = cfg.model
    if model.get('num_classes') is not None:
        return
    needs = [t for t in model.get('tasks', []) if get_task(t).num_channels is None]
    if not needs:
        return
    classes = dataset_meta.get('classes')
    if not classes:
        raise ValueError(f'tasks {needs} need the number of classes, but model.num_classes is '
                         f'unset in {cfg.filename} and neither the checkpoint meta nor the '
                         "config's test dataset gives `classes`; pass cfg_options="
                         "{'model.num_classes': N}")
    model['num_classes'] = len(classes)


def init_model(config: Union[str, os.PathLike, Config],
               checkpoint: Optional[Union[str, os.PathLike]] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config file, load a checkpoint, move it to ``device``.

    The checkpoint is read with ``torch.load(weights_only=True)``
    (:func:`mtdense.checkpoint.safe_load`, the one reader) and must match the model exactly
    (strict). ``model.dataset_meta`` comes from the checkpoint's
    ``meta['dataset_meta']`` if present, else from the config's test dataset
    (:func:`dataset_meta_from_config`); ``model.num_classes`` unset in the config
    is filled from its ``classes``. ``model.cfg`` is the config used.

    Returns:
        The model in eval mode.
    """
    from mtdense.checkpoint import safe_load, state_dict_from
    from mtdense.engine.checkpoint import load_model_state
    from mtdense.utils import register_all_modules

    register_all_modules()
    cfg = _load_config(config, cfg_options)

    state, dataset_meta = None, None
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        ckpt = safe_load(checkpoint, map_location='cpu')
        state = state_dict_from(ckpt, checkpoint)
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get('dataset_meta'), dict):
            dataset_meta = dict(meta['dataset_meta'])
        # The checkpoint holds every backbone weight: do not read a pretrained file as well
        # (it need not exist where inference runs).
        backbone = cfg.model.get('backbone')
        if isinstance(backbone, dict) and backbone.get('checkpoint') is not None:
            backbone['checkpoint'] = None
    if dataset_meta is None:
        dataset_meta = dataset_meta_from_config(cfg)
    fill_num_classes(cfg, dataset_meta)

    model = MODELS.build(cfg.model)
    if state is not None:
        load_model_state(model, state, f'{checkpoint} (config {cfg.filename})', strict=True)
    model.cfg = cfg
    model.dataset_meta = dataset_meta
    model.to(device)
    model.eval()
    return model


def prepare_image(img: ImageInput, index: int, pipelines: Dict[bool, Compose]) -> dict:
    """Run the inference pipeline (``pipelines[True]`` arrays, ``[False]`` paths) on one image."""
    # img_id / sample_idx are meta keys PackMultiTaskInputs copies (datasets set them).
    if isinstance(img, np.ndarray):
        return pipelines[True](dict(img=img, img_path=None, img_id=f'array_{index}',
                                    sample_idx=index))
    if isinstance(img, (str, os.PathLike)):
        path = os.fspath(img)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image file not found: {path}')
        return pipelines[False](dict(img_path=path, img_id=osp.splitext(osp.basename(path))[0],
                                     sample_idx=index))
    raise TypeError(f'expected an image path or an RGB uint8 numpy array, got '
                    f'{type(img).__name__}')


def inference_model(model: nn.Module, img: Union[ImageInput, Sequence[ImageInput]]
                    ) -> Union[Dict[str, np.ndarray], List[Dict[str, np.ndarray]]]:
    """Predict every task of ``model`` on one image or a list of images (one batch).

    Args:
        model: from :func:`init_model` (needs ``model.cfg``).
        img: an image path, an **RGB** uint8 (H, W, 3) array, or a list of them.

    Returns:
        ``{task: array}`` per image (a list for a list input), at the image's size:
        seg tasks (H, W) int64 labels, saliency (H, W) float32 probability, normals
        (H, W, 3) float32 unit vectors, depth (H, W) float32 metres.
    """
    cfg = getattr(model, 'cfg', None)
    if not isinstance(cfg, Config):
        raise AttributeError('inference_model: model has no `cfg` (mmengine Config); build it '
                             'with mtdense.apis.init_model')
    single = not isinstance(img, (list, tuple))
    imgs = [img] if single else list(img)
    if not imgs:
        raise ValueError('inference_model: empty image list')
    pipelines: Dict[bool, Compose] = {}
    if any(isinstance(i, np.ndarray) for i in imgs):
        pipelines[True] = build_inference_pipeline(cfg, from_array=True)
    if any(not isinstance(i, np.ndarray) for i in imgs):
        pipelines[False] = build_inference_pipeline(cfg, from_array=False)
    prepared = [prepare_image(im, k, pipelines) for k, im in enumerate(imgs)]
    tasks = list(model.tasks)
    results = [prediction_to_numpy(s, tasks) for s in predict_prepared(model, prepared)]
    return results[0] if single else results


def predict_prepared(model: nn.Module, prepared: Sequence[dict]) -> List[Any]:
    """``model.test_step`` on pipeline outputs, one batch per network input size; the
    predicted data samples in input order.

    Padding images to a common size would make a prediction depend on its batch mates
    (the windowed backbone sees the padding), so images of different sizes never share
    a batch.
    """
    groups: Dict[tuple, List[int]] = {}
    for k, item in enumerate(prepared):
        groups.setdefault(tuple(item['inputs'].shape), []).append(k)
    out: List[Any] = [None] * len(prepared)
    for idx in groups.values():
        with torch.no_grad():
            samples = model.test_step(pseudo_collate([prepared[k] for k in idx]))
        for k, s in zip(idx, samples):
            out[k] = s
    return out
