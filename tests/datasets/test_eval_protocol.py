"""Evaluation protocols ('native' vs 'resized'), the (h, w) size convention and zoom."""
import numpy as np
import pytest
from mmcv.transforms import Compose

from mtdense.datasets.transforms import (LoadMultiTaskAnnotations, MTPad, MTRandomCrop,
                                         MTRandomRotate, MTResize, MTTestResize,
                                         PackMultiTaskInputs)

H, W = 24, 40


def _image_results(h=H, w=W):
    """Results after LoadMultiTaskImage, with annotations to load (decoded from arrays)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 5 % 256, yy * 9 % 256, (xx + yy) % 256], -1).astype(np.uint8)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_path='/d/a.png', img_id='a',
                sample_idx=0)


@pytest.fixture
def ann_files(tmp_path):
    """An ann_info with a label map (column index // 4) and a depth map (1 + x) on disk."""
    yy, xx = np.mgrid[0:H, 0:W]
    labels = (xx // 4).astype(np.uint8)
    depth = (1.0 + xx).astype(np.float32)
    import cv2
    cv2.imwrite(str(tmp_path / 'seg.png'), labels)
    np.save(tmp_path / 'depth.npy', depth)
    return dict(semseg=dict(path=str(tmp_path / 'seg.png'), decoder='label_png', num_classes=10),
                depth=dict(path=str(tmp_path / 'depth.npy'), decoder='depth_npy')), labels, depth


def _run(protocol, ann, keep_ratio=True):
    res = _image_results()
    res['ann_info'] = ann
    pipe = Compose([MTTestResize(scale=(16, 16), protocol=protocol, keep_ratio=keep_ratio),
                    MTPad(size=(16, 16)), LoadMultiTaskAnnotations(), PackMultiTaskInputs()])
    return pipe(res)


def test_native_protocol_keeps_ground_truth_at_original_size(ann_files):
    ann, labels, depth = ann_files
    out = _run('native', ann)
    meta = out['data_samples'].metainfo
    assert out['inputs'].shape == (3, 16, 16)  # fixed network size: batch-invariant
    assert meta['img_shape'] == (10, 16)  # keep ratio: 24 x 40 -> 10 x 16 (long edge 16)
    assert meta['eval_protocol'] == 'native' and meta['eval_shape'] == (H, W)
    np.testing.assert_array_equal(out['data_samples'].gt_semseg.data.numpy()[0], labels)


def test_resized_protocol_resizes_ground_truth_to_the_network_size(ann_files):
    ann, labels, depth = ann_files
    out = _run('resized', ann)
    meta = out['data_samples'].metainfo
    # MTLoRA's FixedResize: exactly the scale, aspect ratio not kept
    assert meta['img_shape'] == (16, 16) and meta['eval_shape'] == (16, 16)
    assert meta['ori_shape'] == (H, W) and meta['eval_protocol'] == 'resized'
    seg = out['data_samples'].gt_semseg.data.numpy()[0]
    # nearest neighbour with pixel centres: output column j samples source column
    # floor((j + 0.5) * 40 / 16)
    cols = np.floor((np.arange(16) + 0.5) * W / 16).astype(int)
    np.testing.assert_array_equal(seg, np.tile(labels[0, cols], (16, 1)))
    dep = out['data_samples'].gt_depth.data.numpy()[0]
    assert dep.shape == (16, 16) and dep.min() >= 1.0 and dep.max() <= W


def test_test_resize_must_precede_annotation_loading(ann_files):
    ann, _, _ = ann_files
    res = _image_results()
    res['ann_info'] = ann
    res = LoadMultiTaskAnnotations()(res)
    with pytest.raises(ValueError, match='before LoadMultiTaskAnnotations'):
        MTTestResize(scale=16)(res)
    with pytest.raises(ValueError, match="'native', 'resized'"):
        MTTestResize(scale=16, protocol='published')


def test_model_predicts_at_eval_shape():
    """The model returns predictions at eval_shape (resized protocol: the network size)."""
    import torch

    from helpers.models import tiny_saliency_swin
    from mtdense.structures import MultiTaskDataSample
    model = tiny_saliency_swin().eval()
    x = torch.zeros(1, 3, 32, 32)
    for shape in [(32, 32), (20, 24)]:
        s = MultiTaskDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(64, 64),
                                              eval_shape=shape))
        with torch.no_grad():
            out = model(x, [s], mode='predict')[0]
        assert tuple(out.pred_saliency.data.shape[1:]) == shape


# -------------------------------------------------------------- (h, w) convention
def test_crop_then_pad_of_the_same_hw_size_is_consistent():
    """The NYUD defect: crop (448, 576) then pad (448, 576) on a 480 x 640 image."""
    res = _image_results(48, 64)
    res = MTRandomCrop(crop_size=(44, 57))(res)
    assert res['img_shape'] == (44, 57)
    res = MTPad(size=(44, 57))(res)
    assert res['img'].shape[:2] == (44, 57)
    with pytest.raises(ValueError, match=r'sizes in mtdense transforms are \(h, w\)'):
        MTPad(size=(57, 44))(MTRandomCrop(crop_size=(44, 57))(_image_results(48, 64)))


def test_resize_scale_is_hw():
    out = MTResize(scale=(12, 30), keep_ratio=False)(_image_results())
    assert out['img'].shape[:2] == (12, 30) and out['img_shape'] == (12, 30)
    with pytest.raises(ValueError, match=r'pair \(h, w\)'):
        MTResize(scale=(12, 30, 3))


# -------------------------------------------------------------- zoom (ScaleNRotate)
def test_rotate_zoom_scales_content_and_divides_depth():
    h, w = 33, 33
    yy, xx = np.mgrid[0:h, 0:w]
    depth = np.full((h, w), 4.0, np.float32)
    labels = ((np.abs(xx - 16) <= 4) & (np.abs(yy - 16) <= 4)).astype(np.uint8)
    res = dict(img=np.zeros((h, w, 3), np.uint8), img_shape=(h, w), gt_depth=depth,
               gt_semseg=labels, task_fields=['depth', 'semseg'])
    out = MTRandomRotate(prob=1.0, degree=(0, 0), zoom=(2.0, 2.0))(res)
    assert out['zoom'] == 2.0 and out['img_shape'] == (h, w)
    # a 9 x 9 square about the centre becomes ~17 x 17; depth halves (content twice closer)
    assert 15 <= out['gt_semseg'].sum(0).max() <= 19
    np.testing.assert_allclose(out['gt_depth'][out['gt_depth'] > 0], 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match='auto_bound'):
        MTRandomRotate(prob=1.0, degree=10, zoom=(0.5, 1.5), auto_bound=True)
    with pytest.raises(ValueError, match='0 < lo <= hi'):
        MTRandomRotate(prob=1.0, degree=10, zoom=(1.5, 0.5))
