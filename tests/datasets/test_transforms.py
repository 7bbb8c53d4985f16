"""Tests of the multi-task transforms on small synthetic arrays built here."""
import copy

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose

from mtdense.datasets.transforms import (LoadMultiTaskAnnotations, LoadMultiTaskImage,
                                         MTPad, MTPhotoMetricDistortion, MTRandomCrop,
                                         MTRandomFlip, MTRandomResize, MTRandomRotate, MTResize,
                                         PackMultiTaskInputs, resize_map)
from mtdense.registry import TRANSFORMS
from mtdense.structures import MultiTaskDataSample

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']


def sphere_normals(h, w, radius, center=None):
    """Analytic normals of a sphere seen head-on (x right, y up, z to viewer); 0 outside."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = center if center is not None else ((w - 1) / 2, (h - 1) / 2)
    u, v = (xx - cx) / radius, (cy - yy) / radius
    inside = u * u + v * v < 1
    n = np.stack([u, v, np.sqrt(np.clip(1 - u * u - v * v, 0, 1))], -1)
    return np.where(inside[..., None], n, 0).astype(np.float32), inside


def make_results(h=24, w=32, seed=0):
    """A sample whose maps encode their pixel coordinates, with invalid regions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 7 % 256, yy * 9 % 256, rng.integers(0, 256, (h, w))],
                   -1).astype(np.uint8)
    semseg = ((xx // 4 + yy // 4) % 5).astype(np.uint8)
    semseg[:3, :3] = 255
    parts = (xx * 7 // w).astype(np.uint8)
    parts[-2:] = 255
    sal = (xx > w // 2).astype(np.uint8)
    sal[0, :] = 255
    normals, _ = sphere_normals(h, w, radius=0.45 * min(h, w) * 1.8)
    normals[5:8, 5:9] = 0  # an invalid hole inside
    depth = (1.0 + yy * w + xx).astype(np.float32)  # encodes (x, y); always > 0
    depth[10:12, 20:25] = 0
    return dict(img_path='/data/img_0.png', img_id='img_0', sample_idx=0, img=img,
                img_shape=(h, w), ori_shape=(h, w), gt_semseg=semseg, gt_human_parts=parts,
                gt_saliency=sal, gt_normals=normals, gt_depth=depth, task_fields=list(TASKS))


def unit_where_valid(n):
    valid = np.any(n != 0, -1)
    return valid, np.abs(np.linalg.norm(n[valid], axis=-1) - 1).max() if valid.any() else 0.0


# ---------------------------------------------------------------- flip
@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_flip_twice_is_identity(direction):
    res = make_results()
    ref = copy.deepcopy(res)
    flip = MTRandomFlip(prob=1.0, direction=direction)
    once = flip(copy.deepcopy(res))
    assert once['flip'] and once['flip_direction'] == direction
    assert not np.array_equal(once['gt_semseg'], ref['gt_semseg'])
    twice = flip(once)
    for key in ['img'] + [f'gt_{t}' for t in TASKS]:
        np.testing.assert_array_equal(twice[key], ref[key], err_msg=key)
    assert twice['flip'] is False and twice['flip_direction'] is None


def test_horizontal_flip_negates_normal_x_only():
    res = make_results()
    n = res['gt_normals'].copy()
    out = MTRandomFlip(prob=1.0)(res)
    mirrored = n[:, ::-1]
    np.testing.assert_array_equal(out['gt_normals'][..., 0], -mirrored[..., 0])
    np.testing.assert_array_equal(out['gt_normals'][..., 1:], mirrored[..., 1:])
    # positions mirrored consistently with the image and the depth coordinates
    np.testing.assert_array_equal(out['gt_depth'], make_results()['gt_depth'][:, ::-1])
    # the flipped sphere is still a sphere: mirrored normals equal the analytic field
    np.testing.assert_allclose(out['gt_normals'], n[:, ::-1] * [-1, 1, 1])


def test_flip_prob_zero_records_no_flip():
    res = make_results()
    out = MTRandomFlip(prob=0.0)(copy.deepcopy(res))
    assert out['flip'] is False and out['flip_direction'] is None
    np.testing.assert_array_equal(out['gt_normals'], res['gt_normals'])


# ---------------------------------------------------------------- resize
@pytest.mark.parametrize('scale', [(37, 50), (9, 13), (24, 32)])  # (h, w)
def test_resize_labels_nearest_and_normals_unit(scale):
    res = make_results()
    src_values = {t: set(np.unique(res[f'gt_{t}']).tolist())
                  for t in ['semseg', 'human_parts', 'saliency']}
    out = MTResize(scale=scale, keep_ratio=False)(res)
    assert out['img'].shape == (scale[0], scale[1], 3)
    assert out['img_shape'] == (scale[0], scale[1])
    assert out['scale_factor'] == pytest.approx((scale[1] / 32, scale[0] / 24))  # (w, h)
    for t, values in src_values.items():
        assert out[f'gt_{t}'].shape == (scale[0], scale[1])
        assert out[f'gt_{t}'].dtype == np.uint8
        assert set(np.unique(out[f'gt_{t}']).tolist()) <= values, t
    valid, err = unit_where_valid(out['gt_normals'])
    assert valid.sum() > 0.3 * valid.size and err < 1e-5
    assert out['gt_normals'].dtype == np.float32 and out['gt_depth'].dtype == np.float32


def test_resize_keep_ratio_follows_mmcv_rule():
    out = MTResize(scale=(64, 16), keep_ratio=True)(make_results(24, 32))
    # long edge <= 64 and short edge <= 16 -> factor 16/24
    assert out['img_shape'] == (16, 21) or out['img_shape'] == (16, 22)
    assert out['gt_depth'].shape == out['img_shape']


@pytest.mark.parametrize('size', [(9, 12), (37, 50), (41, 57)])  # (h, w)
def test_valid_aware_depth_resize_does_not_mix_in_zeros(size):
    h, w = 24, 32
    depth = np.zeros((h, w), np.float32)
    depth[:, w // 2:] = 4.0 + np.linspace(0, 1, h)[:, None]  # right half valid, in [4, 5]
    out = resize_map(depth, 'depth', size)
    valid = out > 0
    assert valid.any() and not valid.all()
    assert out[valid].min() >= 4.0 - 1e-5 and out[valid].max() <= 5.0 + 1e-5
    # validity follows the source boundary (nearest neighbour on the mask)
    cols = np.where(valid.any(0))[0]
    assert abs(cols[0] - size[1] / 2) <= 1
    if size[1] > w:
        # when upsampling, plain bilinear resizing *would* mix zeros into these pixels
        naive = cv2.resize(depth, size[::-1], interpolation=cv2.INTER_LINEAR)
        assert (naive[valid] < 4.0 - 1e-3).any()


def test_valid_aware_normals_resize_no_bleeding():
    h, w = 16, 16
    n = np.zeros((h, w, 3), np.float32)
    n[:, 8:] = [0.0, 0.6, 0.8]  # constant unit field on the right, invalid on the left
    out = resize_map(n, 'normals', (23, 27))
    valid = np.any(out != 0, -1)
    assert valid.any()
    np.testing.assert_allclose(out[valid], np.broadcast_to([0.0, 0.6, 0.8], out[valid].shape),
                               atol=1e-6)


def test_random_resize_ratio_range_and_choice():
    res = MTRandomResize(scale=(24, 32), ratio_range=(0.5, 2.0))(make_results())
    h, w = res['img_shape']
    assert 12 <= h <= 48 and res['gt_semseg'].shape == (h, w) and 'scale' in res
    res = MTRandomResize(scale=[(12, 16)])(make_results())
    assert res['img_shape'] == (12, 16)
    with pytest.raises(ValueError, match='ratio_range'):
        MTRandomResize(scale=(24, 32))


def test_resize_before_annotations_touches_image_only():
    res = make_results()
    img_only = dict(img=res['img'], img_shape=(24, 32), ori_shape=(24, 32))
    out = MTResize(scale=(12, 16), keep_ratio=False)(img_only)
    assert out['img'].shape == (12, 16, 3) and 'task_fields' not in out


def test_misaligned_maps_are_an_error():
    res = make_results()
    res['gt_depth'] = res['gt_depth'][:-1]
    with pytest.raises(ValueError, match='gt_depth'):
        MTRandomFlip(prob=1.0)(res)


# ---------------------------------------------------------------- rotate
def test_rotate_90_analytic_normals():
    # A sphere is invariant under rotation about its centre: after rotating the
    # image by 90 degrees the (rotated) normals must reproduce the analytic map.
    # With the wrong sign they would be rotated by 180 degrees instead.
    n, inside = sphere_normals(32, 32, radius=12)
    res = dict(img=np.zeros((32, 32, 3), np.uint8), gt_normals=n, task_fields=['normals'])
    out = MTRandomRotate(prob=1.0, degree=(90, 90))(res)
    assert out['rotate_angle'] == 90.0
    np.testing.assert_array_equal(np.any(out['gt_normals'] != 0, -1), inside)
    np.testing.assert_allclose(out['gt_normals'], n, atol=1e-5)


@pytest.mark.parametrize('angle', [90.0, -90.0])
def test_rotate_90_moves_content_and_rotates_constant_field(angle):
    h = w = 16
    label = np.zeros((h, w), np.uint8)
    label[7:9, w - 2:] = 1  # marker at the middle of the right edge
    normals = np.zeros((h, w, 3), np.float32)
    normals[...] = [0.6, 0.0, 0.8]  # every surface faces right
    res = dict(img=np.zeros((h, w, 3), np.uint8), gt_semseg=label, gt_normals=normals,
               task_fields=['semseg', 'normals'])
    out = MTRandomRotate(prob=1.0, degree=(angle, angle))(res)
    ys, xs = np.nonzero(out['gt_semseg'] == 1)
    if angle > 0:  # counter-clockwise on screen: right edge -> top edge, faces up (+y)
        assert ys.max() <= 1 and set(xs.tolist()) == {7, 8}
        expected = [0.0, 0.6, 0.8]
    else:  # clockwise: right edge -> bottom edge, faces down (-y)
        assert ys.min() >= h - 2 and set(xs.tolist()) == {7, 8}
        expected = [0.0, -0.6, 0.8]
    np.testing.assert_allclose(out['gt_normals'].reshape(-1, 3),
                               np.broadcast_to(expected, (h * w, 3)), atol=1e-5)


def test_rotate_regions_from_outside_are_invalid():
    res = make_results(24, 32)
    res['img'][:] = 200
    out = MTRandomRotate(prob=1.0, degree=(30, 30))(res)
    corner = (slice(0, 2), slice(0, 2))  # top-left corner comes from outside at 30 deg
    assert (out['img'][corner] == 0).all()
    for t in ['semseg', 'human_parts', 'saliency']:
        assert (out[f'gt_{t}'][corner] == 255).all()
    assert (out['gt_depth'][corner] == 0).all()
    assert (out['gt_normals'][corner] == 0).all()
    valid, err = unit_where_valid(out['gt_normals'])
    assert valid.sum() > 100 and err < 1e-5
    # depth stays a weighted mean of valid source depths: within the source range
    d = out['gt_depth'][out['gt_depth'] > 0]
    src = make_results()['gt_depth']
    assert d.min() >= src[src > 0].min() - 1e-3 and d.max() <= src.max() + 1e-3


def test_rotate_auto_bound_enlarges_canvas():
    out = MTRandomRotate(prob=1.0, degree=(90, 90), auto_bound=True)(make_results(24, 32))
    assert out['img'].shape[:2] == (32, 24) == out['img_shape']
    assert out['gt_semseg'].shape == (32, 24)
    # the whole image fits: no pixel of the source is lost
    assert (out['gt_depth'] > 0).sum() == (make_results()['gt_depth'] > 0).sum()


def test_rotate_prob_zero_is_noop():
    res = make_results()
    out = MTRandomRotate(prob=0.0, degree=20)(copy.deepcopy(res))
    assert out['rotate_angle'] == 0.0
    np.testing.assert_array_equal(out['gt_normals'], res['gt_normals'])


# ---------------------------------------------------------------- crop & pad
def test_crop_keeps_alignment():
    np.random.seed(3)
    res = make_results(24, 32)
    normals_src = res['gt_normals'].copy()
    out = MTRandomCrop(crop_size=(10, 12))(res)
    assert out['img'].shape == (10, 12, 3) and out['img_shape'] == (10, 12)
    x0, y0, x1, y1 = out['crop_box']
    yy, xx = np.mgrid[y0:y1, x0:x1]
    # image channels and depth both encode the source coordinates
    np.testing.assert_array_equal(out['img'][..., 0], (xx * 7) % 256)
    np.testing.assert_array_equal(out['img'][..., 1], (yy * 9) % 256)
    dvalid = out['gt_depth'] > 0
    np.testing.assert_array_equal(out['gt_depth'][dvalid], (1 + yy * 32 + xx)[dvalid])
    np.testing.assert_array_equal(out['gt_normals'], normals_src[y0:y1, x0:x1])
    valid, err = unit_where_valid(out['gt_normals'])
    assert err < 1e-5
    for t in ['semseg', 'human_parts', 'saliency']:
        assert out[f'gt_{t}'].shape == (10, 12)


def test_crop_larger_than_image_and_cat_max_ratio():
    out = MTRandomCrop(crop_size=64)(make_results(24, 32))
    assert out['img_shape'] == (24, 32)
    np.random.seed(0)
    out = MTRandomCrop(crop_size=(8, 8), cat_max_ratio=0.75)(make_results())
    labels, counts = np.unique(out['gt_semseg'][out['gt_semseg'] != 255], return_counts=True)
    assert len(labels) > 1 and counts.max() / counts.sum() < 0.75
    res = make_results()
    res['task_fields'].remove('semseg')
    del res['gt_semseg']
    with pytest.raises(KeyError, match='semseg'):
        MTRandomCrop(crop_size=8, cat_max_ratio=0.5)(res)


def test_pad_fills_invalid_values():
    res = make_results(24, 30)
    out = MTPad(size_divisor=16)(res)
    assert out['img'].shape == (32, 32, 3) and out['pad_shape'] == (32, 32)
    assert out['img_shape'] == (24, 30)  # valid content, for un-padding predictions
    assert (out['img'][24:] == 0).all() and (out['img'][:, 30:] == 0).all()
    for t in ['semseg', 'human_parts', 'saliency']:
        assert (out[f'gt_{t}'][24:] == 255).all() and (out[f'gt_{t}'][:, 30:] == 255).all()
    assert (out['gt_depth'][24:] == 0).all() and (out['gt_normals'][:, 30:] == 0).all()
    np.testing.assert_array_equal(out['gt_semseg'][:24, :30], make_results(24, 30)['gt_semseg'])
    out = MTPad(size=(26, 40), pad_val=7)(make_results(24, 30))
    assert out['pad_shape'] == (26, 40) and (out['img'][25] == 7).all()
    with pytest.raises(ValueError, match='smaller'):
        MTPad(size=(16, 16))(make_results(24, 30))


# ---------------------------------------------------------------- photometric
def test_photometric_changes_image_only():
    res = make_results()
    ref = copy.deepcopy(res)
    changed = False
    for seed in range(5):
        np.random.seed(seed)
        out = MTPhotoMetricDistortion()(copy.deepcopy(res))
        for t in TASKS:
            np.testing.assert_array_equal(out[f'gt_{t}'], ref[f'gt_{t}'])
        assert out['img'].dtype == np.uint8 and out['img'].shape == ref['img'].shape
        changed |= not np.array_equal(out['img'], ref['img'])
    assert changed


# ---------------------------------------------------------------- packing
def test_pack_dtypes_shapes_meta():
    res = MTPad(size_divisor=16)(MTRandomFlip(prob=1.0)(make_results(24, 30)))
    packed = PackMultiTaskInputs()(res)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 32, 32)
    np.testing.assert_array_equal(inputs.permute(1, 2, 0).numpy(), res['img'])
    assert isinstance(sample, MultiTaskDataSample)
    assert sample.gt_tasks == sorted(TASKS)
    for t in ['semseg', 'human_parts', 'saliency']:
        gt = sample.get_gt(t).data
        assert gt.dtype == torch.int64 and gt.shape == (1, 32, 32)
    assert sample.gt_normals.data.dtype == torch.float32
    assert sample.gt_normals.data.shape == (3, 32, 32)
    np.testing.assert_array_equal(sample.gt_normals.data.permute(1, 2, 0).numpy(),
                                  res['gt_normals'])
    assert sample.gt_depth.data.dtype == torch.float32 and sample.gt_depth.data.shape == (1, 32, 32)
    meta = sample.metainfo
    assert meta['img_path'] == '/data/img_0.png' and meta['img_id'] == 'img_0'
    assert meta['ori_shape'] == (24, 30) and meta['img_shape'] == (24, 30)
    assert meta['pad_shape'] == (32, 32) and meta['flip'] is True
    assert meta['flip_direction'] == 'horizontal' and meta['scale_factor'] == (1.0, 1.0)
    assert meta['tasks'] == TASKS


def test_pack_without_annotations_and_missing_meta():
    res = make_results()
    img_only = {k: res[k] for k in ['img', 'img_path', 'img_id', 'sample_idx', 'img_shape',
                                    'ori_shape']}
    packed = PackMultiTaskInputs()(img_only)
    assert packed['data_samples'].gt_tasks == [] and packed['data_samples'].tasks == []
    with pytest.raises(KeyError, match='camera'):
        PackMultiTaskInputs(meta_keys=('img_path', 'camera'))(make_results())


def test_pipeline_from_config_dicts():
    pipeline = Compose([TRANSFORMS.build(c) for c in [
        dict(type='MTRandomResize', scale=(32, 24), ratio_range=(0.75, 1.5)),
        dict(type='MTRandomRotate', prob=0.5, degree=15),
        dict(type='MTRandomCrop', crop_size=(16, 16), cat_max_ratio=0.9),
        dict(type='MTRandomFlip', prob=0.5),
        dict(type='MTPhotoMetricDistortion'),
        dict(type='MTPad', size=(16, 16)),
        dict(type='PackMultiTaskInputs'),
    ]])
    np.random.seed(1)
    for _ in range(3):
        packed = pipeline(make_results())
        assert packed['inputs'].shape == (3, 16, 16)
        n = packed['data_samples'].gt_normals.data
        norm = n.norm(dim=0)
        valid = (n != 0).any(0)
        assert torch.allclose(norm[valid], torch.ones_like(norm[valid]), atol=1e-5)


# ---------------------------------------------------------------- loading (via mtdense.datasets.io)
def write_sample(root, h=24, w=32, depth_hw=None):
    """Write one sample in the synthetic layout; return its data info."""
    res = make_results(h, w)
    paths = {}
    for sub in ['images', 'segmentation', 'human_parts', 'saliency', 'normals', 'depth']:
        (root / sub).mkdir(exist_ok=True)
    paths['img'] = str(root / 'images' / 'a.png')
    cv2.imwrite(paths['img'], res['img'][..., ::-1])  # cv2 writes BGR
    seg = np.where(res['gt_semseg'] == 255, 0, res['gt_semseg'] + 1).astype(np.uint8)
    cv2.imwrite(str(root / 'segmentation' / 'a.png'), seg)
    cv2.imwrite(str(root / 'human_parts' / 'a.png'), res['gt_human_parts'])
    cv2.imwrite(str(root / 'saliency' / 'a.png'),
                (np.where(res['gt_saliency'] == 1, 255, 0)).astype(np.uint8))
    np.save(root / 'normals' / 'a.npy', res['gt_normals'])
    depth = res['gt_depth'] if depth_hw is None else np.ones(depth_hw, np.float32)
    np.save(root / 'depth' / 'a.npy', depth)
    info = dict(img_path=paths['img'], img_id='a', sample_idx=0, ann_info=dict(
        semseg=dict(path=str(root / 'segmentation' / 'a.png'), decoder='label_png_minus1',
                    num_classes=5),
        human_parts=dict(path=str(root / 'human_parts' / 'a.png'), decoder='parts_png'),
        saliency=dict(path=str(root / 'saliency' / 'a.png'), decoder='saliency_png'),
        normals=dict(path=str(root / 'normals' / 'a.npy'), decoder='normals_npy'),
        depth=dict(path=str(root / 'depth' / 'a.npy'), decoder='depth_npy')))
    return info, res


def test_load_image_and_annotations(tmp_path):
    info, ref = write_sample(tmp_path)
    out = LoadMultiTaskAnnotations()(LoadMultiTaskImage()(copy.deepcopy(info)))
    np.testing.assert_array_equal(out['img'], ref['img'])  # RGB order preserved
    assert out['ori_shape'] == out['img_shape'] == (24, 32)
    assert out['task_fields'] == TASKS
    ref['gt_saliency'][ref['gt_saliency'] == 255] = 0  # saliency PNGs have no ignore value
    for t in TASKS:
        assert out[f'gt_{t}'].dtype == ref[f'gt_{t}'].dtype
        np.testing.assert_allclose(out[f'gt_{t}'], ref[f'gt_{t}'], atol=1e-6, err_msg=t)
    sub = LoadMultiTaskAnnotations(tasks=['depth', 'semseg'])(
        LoadMultiTaskImage()(copy.deepcopy(info)))
    assert sub['task_fields'] == ['depth', 'semseg'] and 'gt_normals' not in sub


def test_test_pipeline_keeps_gt_at_original_size(tmp_path):
    info, _ = write_sample(tmp_path)
    pipeline = Compose([LoadMultiTaskImage(), MTResize(scale=(16, 12), keep_ratio=True),
                        LoadMultiTaskAnnotations(), PackMultiTaskInputs()])
    packed = pipeline(copy.deepcopy(info))
    assert packed['inputs'].shape == (3, 12, 16)
    sample = packed['data_samples']
    assert sample.gt_depth.shape == (24, 32) and sample.ori_shape == (24, 32)
    assert sample.img_shape == (12, 16) and sample.scale_factor == (0.5, 0.5)


def test_size_mismatch_names_the_file(tmp_path):
    info, _ = write_sample(tmp_path, depth_hw=(20, 32))
    res = LoadMultiTaskImage()(info)
    with pytest.raises(ValueError) as e:
        LoadMultiTaskAnnotations()(res)
    msg = str(e.value)
    assert str(tmp_path / 'depth' / 'a.npy') in msg and "'depth'" in msg
    assert '(20, 32)' in msg and '(24, 32)' in msg


def test_unknown_or_missing_task_is_key_error(tmp_path):
    info, _ = write_sample(tmp_path)
    with pytest.raises(KeyError, match='edges'):
        LoadMultiTaskAnnotations(tasks=['edges'])
    del info['ann_info']['normals']
    res = LoadMultiTaskImage()(info)
    with pytest.raises(KeyError, match='normals'):
        LoadMultiTaskAnnotations(tasks=['semseg', 'normals'])(res)
    info['ann_info']['bogus'] = dict(path='x', decoder='depth_npy')
    with pytest.raises(KeyError, match='bogus'):
        LoadMultiTaskAnnotations()(res)
