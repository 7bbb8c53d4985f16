"""Tests of the Python inference API (``mtdense.apis``) with a tiny real model.

The model is the repository's VMT-Adapter config shrunk to a 1-block-per-stage
Swin (embed_dims 16, window 4) on 48 x 64 synthetic scenes (``helpers.tiny_model``; the
``tiny_setup`` fixture).
"""
from __future__ import annotations

import copy
import os.path as osp

import numpy as np
import pytest
import torch

from helpers.tiny_model import H, TASKS, W, image_path


@pytest.fixture(scope='module')
def model(tiny_setup):
    from mtdense.apis import init_model
    return init_model(tiny_setup['config'], tiny_setup['checkpoint'])


def test_init_model_loads_checkpoint_and_meta(tiny_setup, model):
    from mmengine.config import Config
    assert not model.training
    assert isinstance(model.cfg, Config)
    # Classes/palette come from the checkpoint meta, not from the config's dataset.
    assert list(model.dataset_meta['classes']) == tiny_setup['classes']
    assert model.dataset_meta['palette'] == tiny_setup['palette']
    state = model.state_dict()
    assert state.keys() == tiny_setup['state_dict'].keys()
    for k, v in tiny_setup['state_dict'].items():
        assert torch.equal(state[k], v), k


def test_init_model_meta_from_config(tiny_setup):
    """Without a checkpoint the classes come from the config's dataset (meta.json)."""
    import json

    from mtdense.apis import init_model
    with open(osp.join(tiny_setup['data_root'], 'meta.json')) as f:
        classes = json.load(f)['classes']
    model = init_model(tiny_setup['config'])
    assert list(model.dataset_meta['classes']) == classes
    assert model.num_classes['semseg'] == len(classes)


def test_init_model_errors(tiny_setup, tmp_path):
    from mtdense.apis import init_model
    from mtdense.engine.checkpoint import UnsafeCheckpointError

    with pytest.raises(FileNotFoundError, match='config file not found'):
        init_model(str(tmp_path / 'nope.py'))
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        init_model(tiny_setup['config'], str(tmp_path / 'nope.pth'))
    # A checkpoint of another model (semseg head dropped): names the missing keys.
    state = {k: v for k, v in tiny_setup['state_dict'].items() if not k.startswith('heads.semseg')}
    bad = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, bad)
    with pytest.raises(ValueError, match=r'(?s)does not match the model.*missing in the '
                                          r'checkpoint \(\d+\):.*heads\.semseg'):
        init_model(tiny_setup['config'], str(bad))
    # Another class count: the shape mismatch is reported with the file name.
    with pytest.raises(ValueError, match=r'(?s)partial\.pth .*does not match.*different shapes'):
        torch.save({'state_dict': tiny_setup['state_dict']}, bad)
        init_model(tiny_setup['config'], str(bad), cfg_options={'model.num_classes': 3})
    # Arbitrary pickled objects are refused (weights_only loading).
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': tiny_setup['state_dict'], 'obj': _Unsafe()}, unsafe)
    with pytest.raises(UnsafeCheckpointError):
        init_model(tiny_setup['config'], str(unsafe))
    # No class count anywhere: a clear error instead of a model with a wrong head.
    with pytest.raises(ValueError, match='need the number of classes'), \
            pytest.warns(UserWarning, match='could not read the dataset metainfo'):
        init_model(tiny_setup['config'], cfg_options={
            'test_dataloader.dataset.data_root': str(tmp_path / 'missing'),
            'model.num_classes': None})


class _Unsafe:
    pass


def test_inference_path_outputs(model):
    from mtdense.apis import inference_model
    setup_root = osp.dirname(model.cfg.filename)
    out = inference_model(model, osp.join(setup_root, 'synthetic', 'images', '000000.png'))
    assert sorted(out) == sorted(TASKS)
    num_classes = len(model.dataset_meta['classes'])
    for task in ('semseg', 'human_parts'):
        assert out[task].shape == (H, W) and out[task].dtype == np.int64
    assert 0 <= out['semseg'].min() and out['semseg'].max() < num_classes
    assert 0 <= out['human_parts'].min() and out['human_parts'].max() < 7
    assert out['saliency'].shape == (H, W) and out['saliency'].dtype == np.float32
    assert 0 <= out['saliency'].min() and out['saliency'].max() <= 1
    assert out['normals'].shape == (H, W, 3) and out['normals'].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out['normals'], axis=-1), 1, atol=1e-4)
    assert out['depth'].shape == (H, W) and out['depth'].dtype == np.float32
    assert (out['depth'] > 0).all()
    # Random weights: the continuous maps vary over the image (they would not if, e.g., the
    # image were not passed on).
    assert out['depth'].std() > 0 and out['normals'].std(axis=(0, 1)).min() > 0


def test_inference_matches_test_pipeline(tiny_setup, model):
    """Same predictions as the config's full test pipeline (with annotations) + test_step."""
    from mmengine.dataset import pseudo_collate

    from mtdense.apis import inference_model
    from mtdense.registry import DATASETS
    ds_cfg = copy.deepcopy(model.cfg.test_dataloader.dataset)
    dataset = DATASETS.build(ds_cfg)
    item = dataset[1]
    with torch.no_grad():
        ref = model.test_step(pseudo_collate([item]))[0]
    out = inference_model(model, item['data_samples'].img_path)
    for task in TASKS:
        expected = ref.get_pred(task).data.numpy()
        expected = expected.transpose(1, 2, 0) if expected.shape[0] == 3 else expected[0]
        np.testing.assert_allclose(out[task], expected, rtol=1e-5, atol=1e-5, err_msg=task)


def test_inference_array_is_rgb_and_list(tiny_setup, model):
    from mtdense.apis import inference_model
    from mtdense.datasets.io import decode
    path = image_path(tiny_setup, 2)
    rgb = decode('image', path)
    by_path = inference_model(model, path)
    by_array = inference_model(model, rgb)
    for task in TASKS:
        np.testing.assert_allclose(by_array[task], by_path[task], rtol=1e-5, atol=1e-5)
    # BGR input is a different image: the API does not swap channels behind the user's back.
    bgr = inference_model(model, np.ascontiguousarray(rgb[..., ::-1]))
    assert not np.allclose(bgr['depth'], by_path['depth'])
    # Lists give one dict per image, in order, each at its own size.
    odd = np.ascontiguousarray(rgb[:37, :53])
    outs = inference_model(model, [path, odd])
    assert isinstance(outs, list) and len(outs) == 2
    assert outs[0]['normals'].shape == (H, W, 3)
    assert outs[1]['semseg'].shape == (37, 53) and outs[1]['normals'].shape == (37, 53, 3)


def test_inference_without_autograd(tiny_setup, model, monkeypatch):
    from mtdense.apis import inference_model
    seen = []
    original = model.test_step

    def spy(data):
        seen.append(torch.is_grad_enabled())
        return original(data)

    monkeypatch.setattr(model, 'test_step', spy)
    inference_model(model, image_path(tiny_setup))
    assert seen == [False]


def test_inference_errors(tiny_setup, model, tmp_path):
    from mtdense.apis import inference_model
    with pytest.raises(ValueError, match=r'RGB uint8 \(H, W, 3\)'):
        inference_model(model, np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match=r'RGB uint8 \(H, W, 3\)'):
        inference_model(model, np.zeros((H, W, 3), np.float32))
    with pytest.raises(FileNotFoundError, match='image file not found'):
        inference_model(model, str(tmp_path / 'missing.png'))
    with pytest.raises(TypeError, match='image path or an RGB uint8'):
        inference_model(model, 42)
    with pytest.raises(ValueError, match='empty image list'):
        inference_model(model, [])
    bare = torch.nn.Module()
    with pytest.raises(AttributeError, match='init_model'):
        inference_model(bare, image_path(tiny_setup))


def test_build_inference_pipeline(model):
    from mtdense.apis import LoadMultiTaskImageFromArray, build_inference_pipeline
    names = [type(t).__name__ for t in build_inference_pipeline(model.cfg).transforms]
    assert names == ['LoadMultiTaskImage', 'MTResize', 'PackMultiTaskInputs']
    arr = build_inference_pipeline(model.cfg, from_array=True)
    assert isinstance(arr.transforms[0], LoadMultiTaskImageFromArray)
    assert 'LoadMultiTaskAnnotations' not in [type(t).__name__ for t in arr.transforms]
    packed = arr(dict(img=np.zeros((10, 12, 3), np.uint8), img_id='x', sample_idx=0))
    assert tuple(packed['inputs'].shape) == (3, 64, 77)  # MTResize (96, 64), keep ratio
    assert packed['data_samples'].ori_shape == (10, 12)
    cfg = copy.deepcopy(model.cfg)
    cfg.test_dataloader.dataset.pipeline = [dict(type='MTResize', scale=(8, 8))]
    with pytest.raises(ValueError, match='exactly one of'):
        build_inference_pipeline(cfg)
