"""Decoders of mtdense.datasets.io: values, conventions and every bad-input case."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import fixtures as fx
from mtdense.datasets.base import voc_palette
from mtdense.datasets.io import DECODERS, DataFileError, decode, decode_ann

H, W = fx.H, fx.W


def _rejects(match: str, *args, **kwargs) -> None:
    """``decode(*args, **kwargs)`` raises a DataFileError whose message matches ``match``."""
    with pytest.raises(DataFileError, match=match):
        decode(*args, **kwargs)


def _garbage(path: Path) -> str:
    path.write_bytes(b'this is not an image \x00\x01\x02' * 10)
    return str(path)


def test_registry_and_dispatch(tmp_path):
    assert {'image', 'label_png', 'label_png_minus1', 'parts_png', 'pascal_parts_mat',
            'saliency_png', 'normals_png', 'normals_npy', 'depth_npy'} <= set(DECODERS)
    with pytest.raises(KeyError, match='no_such_decoder'):
        decode('no_such_decoder', str(tmp_path / 'x.png'))
    d = np.full((H, W), 2.5, np.float32)
    np.save(tmp_path / 'd.npy', d)
    out = decode_ann(dict(path=str(tmp_path / 'd.npy'), decoder='depth_npy'))
    np.testing.assert_array_equal(out, d)
    with pytest.raises(KeyError, match="'decoder'"):
        decode_ann(dict(path=str(tmp_path / 'd.npy')))


# ----------------------------------------------------------------------------- image
def test_image_rgb_order_and_errors(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[..., 2] = 10
    fx.write_rgb(str(tmp_path / 'a.png'), rgb)
    out = decode('image', str(tmp_path / 'a.png'))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb)
    gray = np.full((H, W), 77, np.uint8)
    fx.write_gray_png(str(tmp_path / 'g.png'), gray)
    np.testing.assert_array_equal(decode('image', str(tmp_path / 'g.png')),
                                  np.repeat(gray[..., None], 3, axis=2))

    missing = str(tmp_path / 'missing.jpg')
    _rejects('missing.jpg.*not found', 'image', missing)
    bad = _garbage(tmp_path / 'corrupt.jpg')
    _rejects('corrupt.jpg.*cannot decode', 'image', bad)


# ---------------------------------------------------------------------------- labels
def test_label_png_palette_and_gray(tmp_path):
    labels = np.arange(H * W).reshape(H, W).astype(np.uint8) % 21
    labels[0, 0] = 255
    fx.write_palette_png(str(tmp_path / 'p.png'), labels, voc_palette(256))
    out = decode('label_png', str(tmp_path / 'p.png'), num_classes=21)
    assert out.dtype == np.uint8 and out.shape == (H, W)
    np.testing.assert_array_equal(out, labels)  # indices, not palette colours
    fx.write_gray_png(str(tmp_path / 'g.png'), labels)
    np.testing.assert_array_equal(decode('label_png', str(tmp_path / 'g.png')), labels)


def test_label_png_errors(tmp_path):
    labels = np.zeros((H, W), np.uint8)
    labels[3, 4] = 21
    fx.write_gray_png(str(tmp_path / 'range.png'), labels)
    _rejects(r'range.png.*\[21\].*0\.\.20', 'label_png', str(tmp_path / 'range.png'),
             num_classes=21)
    # without num_classes the values are returned as stored
    assert decode('label_png', str(tmp_path / 'range.png'))[3, 4] == 21

    fx.write_rgb(str(tmp_path / 'rgb.png'), np.zeros((H, W, 3), np.uint8))
    _rejects('rgb.png.*single-channel', 'label_png', str(tmp_path / 'rgb.png'))
    assert cv2.imwrite(str(tmp_path / 'deep.png'), np.zeros((H, W), np.uint16))
    _rejects('deep.png.*8-bit', 'label_png', str(tmp_path / 'deep.png'))
    _rejects('gone.png.*not found', 'label_png', str(tmp_path / 'gone.png'))
    _rejects('corrupt.png.*cannot decode', 'label_png', _garbage(tmp_path / 'corrupt.png'))


def test_label_png_minus1(tmp_path):
    raw = np.array([[0, 1, 2, 40]], np.uint8).repeat(3, axis=0)
    fx.write_gray_png(str(tmp_path / 's.png'), raw)
    out = decode('label_png_minus1', str(tmp_path / 's.png'), num_classes=40)
    np.testing.assert_array_equal(out, np.array([[255, 0, 1, 39]], np.uint8).repeat(3, axis=0))
    raw[1, 1] = 41
    fx.write_gray_png(str(tmp_path / 'bad.png'), raw)
    _rejects(r'bad.png.*\[41\]', 'label_png_minus1', str(tmp_path / 'bad.png'), num_classes=40)


def test_parts_png(tmp_path):
    parts = np.array([[0, 1, 6, 255]], np.uint8).repeat(2, axis=0)
    fx.write_gray_png(str(tmp_path / 'p.png'), parts)
    np.testing.assert_array_equal(decode('parts_png', str(tmp_path / 'p.png')), parts)
    parts[0, 0] = 7
    fx.write_gray_png(str(tmp_path / 'bad.png'), parts)
    _rejects(r'bad.png.*\[7\].*0\.\.6', 'parts_png', str(tmp_path / 'bad.png'))


# -------------------------------------------------------------------------- saliency
def test_saliency_threshold_and_channels(tmp_path):
    sal = np.array([[0, 127, 128, 255]], np.uint8).repeat(2, axis=0)
    fx.write_gray_png(str(tmp_path / 's.png'), sal)
    out = decode('saliency_png', str(tmp_path / 's.png'))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.array([[0, 0, 1, 1]], np.uint8).repeat(2, axis=0))
    # grey saved as RGB: accepted
    fx.write_rgb(str(tmp_path / 'rgb.png'), np.repeat(sal[..., None], 3, axis=2))
    np.testing.assert_array_equal(decode('saliency_png', str(tmp_path / 'rgb.png')), out)
    colour = np.repeat(sal[..., None], 3, axis=2)
    colour[..., 1] = 0
    fx.write_rgb(str(tmp_path / 'colour.png'), colour)
    _rejects('colour.png.*single-channel', 'saliency_png', str(tmp_path / 'colour.png'))
    _rejects('nosal.png.*not found', 'saliency_png', str(tmp_path / 'nosal.png'))


# --------------------------------------------------------------------------- normals
def test_normals_png_decode(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = [255, 128, 128]   # ~ +x
    rgb[0, 1] = [128, 0, 128]     # ~ -y
    rgb[0, 2] = [128, 128, 255]   # ~ +z
    rgb[1, :] = [200, 60, 90]
    fx.write_rgb(str(tmp_path / 'n.png'), rgb)
    out = decode('normals_png', str(tmp_path / 'n.png'))
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    ref = 2.0 * rgb.astype(np.float64) / 255.0 - 1.0
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-6)
    assert out[0, 0, 0] > 0.99 and out[0, 1, 1] < -0.99 and out[0, 2, 2] > 0.99


def test_normals_png_validity_from_labelmap(tmp_path):
    rng = np.random.default_rng(0)
    rgb = fx.encode_normals_png(fx.random_unit_normals(rng))
    fx.write_rgb(str(tmp_path / 'n.png'), rgb)
    labelmap = rng.choice(np.array([0, 2, 284, 440]), size=(H, W))
    fx.write_labelmap_mat(str(tmp_path / 'lm.mat'), labelmap)
    out = decode('normals_png', str(tmp_path / 'n.png'), valid_mask_mat=str(tmp_path / 'lm.mat'),
                 valid_classes=[284, 440])
    valid = np.isin(labelmap, [284, 440])
    assert 0 < valid.sum() < valid.size
    np.testing.assert_array_equal(out[~valid], 0.0)
    np.testing.assert_allclose(np.linalg.norm(out[valid], axis=-1), 1.0, atol=1e-6)
    full = decode('normals_png', str(tmp_path / 'n.png'))
    np.testing.assert_array_equal(out[valid], full[valid])

    fx.write_labelmap_mat(str(tmp_path / 'small.mat'), labelmap[:-1])
    png = str(tmp_path / 'n.png')
    _rejects(r'small.mat.*\(23, 32\)', 'normals_png', png,
             valid_mask_mat=str(tmp_path / 'small.mat'), valid_classes=[440])
    from scipy.io import savemat
    savemat(str(tmp_path / 'nolm.mat'), {'Other': labelmap})
    _rejects('nolm.mat.*LabelMap', 'normals_png', png,
             valid_mask_mat=str(tmp_path / 'nolm.mat'), valid_classes=[440])
    _rejects('absent.mat.*not found', 'normals_png', png,
             valid_mask_mat=str(tmp_path / 'absent.mat'), valid_classes=[440])
    _rejects('junk.mat.*cannot read', 'normals_png', png,
             valid_mask_mat=_garbage(tmp_path / 'junk.mat'), valid_classes=[440])
    with pytest.raises(ValueError, match='both'):
        decode('normals_png', str(tmp_path / 'n.png'), valid_mask_mat=str(tmp_path / 'lm.mat'))


def test_normals_png_channel_errors(tmp_path):
    fx.write_gray_png(str(tmp_path / 'gray.png'), np.zeros((H, W), np.uint8))
    _rejects('gray.png.*3 channels.*got 1', 'normals_png', str(tmp_path / 'gray.png'))
    assert cv2.imwrite(str(tmp_path / 'rgba.png'), np.zeros((H, W, 4), np.uint8))
    _rejects('rgba.png.*3 channels.*got 4', 'normals_png', str(tmp_path / 'rgba.png'))
    _rejects('c.png.*cannot decode', 'normals_png', _garbage(tmp_path / 'c.png'))


def test_normals_npy(tmp_path):
    n = np.zeros((2, 2, 3), np.float64)
    n[0, 0] = [3.0, 0.0, 4.0]
    n[0, 1] = [0.0, -2.0, 0.0]
    n[1, 0] = [0.6, 0.0, 0.8]
    np.save(tmp_path / 'n.npy', n)
    out = decode('normals_npy', str(tmp_path / 'n.npy'))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.6, 0.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0.0, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1, 0], [0.6, 0.0, 0.8], atol=1e-6)
    np.testing.assert_array_equal(out[1, 1], 0.0)  # zero vector stays invalid

    np.save(tmp_path / 'shape.npy', np.ones((H, W, 2), np.float32))
    _rejects(r'shape.npy.*\(H, W, 3\)', 'normals_npy', str(tmp_path / 'shape.npy'))
    bad = np.ones((H, W, 3), np.float32)
    bad[1, 1, 1] = np.nan
    np.save(tmp_path / 'nan.npy', bad)
    _rejects('nan.npy.*NaN', 'normals_npy', str(tmp_path / 'nan.npy'))
    np.save(tmp_path / 'int.npy', np.ones((H, W, 3), np.int32))
    _rejects('int.npy.*floating', 'normals_npy', str(tmp_path / 'int.npy'))


# ----------------------------------------------------------------------------- depth
def test_depth_npy_passthrough(tmp_path):
    d = np.linspace(0.0, 10.0, H * W, dtype=np.float64).reshape(H, W)
    np.save(tmp_path / 'd.npy', d)
    out = decode('depth_npy', str(tmp_path / 'd.npy'))
    assert out.dtype == np.float32 and out.shape == (H, W)
    np.testing.assert_array_equal(out, d.astype(np.float32))
    assert out[0, 0] == 0.0  # 0 = invalid is kept as 0
    np.save(tmp_path / 'd1.npy', d[..., None])
    assert decode('depth_npy', str(tmp_path / 'd1.npy')).shape == (H, W)


@pytest.mark.parametrize('bad,match', [(np.nan, 'NaN'), (np.inf, 'NaN/inf'), (-0.5, 'negative')])
def test_depth_npy_bad_values(tmp_path, bad, match):
    d = np.ones((H, W), np.float32)
    d[5, 6] = bad
    np.save(tmp_path / 'bad_depth.npy', d)
    _rejects(f'bad_depth.npy.*{match}', 'depth_npy', str(tmp_path / 'bad_depth.npy'))


def test_depth_npy_format_errors(tmp_path):
    np.save(tmp_path / 'd3.npy', np.ones((H, W, 2), np.float32))
    _rejects(r'd3.npy.*\(H, W\)', 'depth_npy', str(tmp_path / 'd3.npy'))
    _rejects('junk.npy.*cannot load', 'depth_npy', _garbage(tmp_path / 'junk.npy'))
    _rejects('nodepth.npy.*not found', 'depth_npy', str(tmp_path / 'nodepth.npy'))
    np.save(tmp_path / 'u8.npy', np.ones((H, W), np.uint8))
    _rejects('u8.npy.*floating', 'depth_npy', str(tmp_path / 'u8.npy'))


# ----------------------------------------------------------------------- Pascal-Part
def test_pascal_parts_mapping(tmp_path):
    objects, expected = fx.person_objects('person')
    fx.write_pascal_part_mat(str(tmp_path / 'p.mat'), 'x', objects)
    out = decode('pascal_parts_mat', str(tmp_path / 'p.mat'))
    assert out.dtype == np.uint8 and out.shape == (H, W)
    np.testing.assert_array_equal(out, expected)
    assert set(np.unique(out)) == {0, 1, 2, 3, 4, 6}
    # silhouette pixels not covered by parts -> 255 with person_fill=255
    out255 = decode('pascal_parts_mat', str(tmp_path / 'p.mat'), person_fill=255)
    silhouette = fx.box(2, 22, 2, 14)
    exp255 = expected.copy()
    exp255[silhouette & (expected == 0)] = 255
    np.testing.assert_array_equal(out255, exp255)


def test_pascal_parts_single_object_file(tmp_path):
    # a 1x1 objects struct (squeezed by scipy differently from 1xN) and a 1x1 parts struct
    person = dict(cls='person', class_ind=15, mask=fx.box(0, 10, 0, 10),
                  parts=[('rlleg', fx.box(5, 10, 0, 4))])
    fx.write_pascal_part_mat(str(tmp_path / 'one.mat'), 'x', [person])
    out = decode('pascal_parts_mat', str(tmp_path / 'one.mat'))
    expected = np.zeros((H, W), np.uint8)
    expected[fx.box(5, 10, 0, 4)] = 6
    np.testing.assert_array_equal(out, expected)


def test_pascal_parts_no_person_is_ignored(tmp_path):
    objects, expected = fx.person_objects('no_person')
    fx.write_pascal_part_mat(str(tmp_path / 'dog.mat'), 'x', objects)
    out = decode('pascal_parts_mat', str(tmp_path / 'dog.mat'))
    assert (out == 255).all() and out.shape == (H, W)
    # a person annotated without any part gives no supervision either
    lone = [dict(cls='person', class_ind=15, mask=fx.box(0, 5, 0, 5), parts=[])]
    fx.write_pascal_part_mat(str(tmp_path / 'lone.mat'), 'x', lone)
    assert (decode('pascal_parts_mat', str(tmp_path / 'lone.mat')) == 255).all()
    # no objects at all: the size comes from the image
    fx.write_pascal_part_mat(str(tmp_path / 'empty.mat'), 'x', [])
    fx.write_rgb(str(tmp_path / 'img.jpg'), np.zeros((H, W, 3), np.uint8))
    out = decode('pascal_parts_mat', str(tmp_path / 'empty.mat'),
                 image_path=str(tmp_path / 'img.jpg'))
    assert out.shape == (H, W) and (out == 255).all()
    _rejects('empty.mat.*image_path', 'pascal_parts_mat', str(tmp_path / 'empty.mat'))


def test_pascal_parts_two_persons(tmp_path):
    objects, expected = fx.person_objects('two_persons')
    fx.write_pascal_part_mat(str(tmp_path / 'two.mat'), 'x', objects)
    np.testing.assert_array_equal(decode('pascal_parts_mat', str(tmp_path / 'two.mat')), expected)
    out = decode('pascal_parts_mat', str(tmp_path / 'two.mat'), person_fill=255)
    assert (out[fx.box(10, 20, 18, 30)] == 255).all()  # the part-less person is ignored


def test_pascal_parts_missing_and_bad(tmp_path):
    _rejects('nofile.mat.*not found', 'pascal_parts_mat', str(tmp_path / 'nofile.mat'))
    fx.write_rgb(str(tmp_path / 'img.jpg'), np.zeros((H, W, 3), np.uint8))
    out = decode('pascal_parts_mat', str(tmp_path / 'nofile.mat'), allow_missing=True,
                 image_path=str(tmp_path / 'img.jpg'))
    assert out.shape == (H, W) and (out == 255).all()
    _rejects('junk.mat.*cannot read', 'pascal_parts_mat', _garbage(tmp_path / 'junk.mat'))
    from scipy.io import savemat
    savemat(str(tmp_path / 'noanno.mat'), {'LabelMap': np.zeros((2, 2))})
    _rejects('noanno.mat.*anno', 'pascal_parts_mat', str(tmp_path / 'noanno.mat'))
    weird = [dict(cls='person', class_ind=15, mask=fx.box(0, 5, 0, 5),
                  parts=[('tail', fx.box(0, 2, 0, 2))])]
    fx.write_pascal_part_mat(str(tmp_path / 'tail.mat'), 'x', weird)
    _rejects("tail.mat.*unknown person part 'tail'", 'pascal_parts_mat', str(tmp_path / 'tail.mat'))
    with pytest.raises(ValueError, match='person_fill'):
        decode('pascal_parts_mat', str(tmp_path / 'tail.mat'), person_fill=3)


def test_pascal_parts_mask_shape_mismatch(tmp_path):
    objs = [dict(cls='dog', class_ind=12, mask=fx.box(0, 5, 0, 5), parts=[]),
            dict(cls='person', class_ind=15, mask=np.ones((H - 1, W), bool),
                 parts=[('head', np.ones((H - 1, W), bool))])]
    fx.write_pascal_part_mat(str(tmp_path / 'mis.mat'), 'x', objs)
    _rejects(r'mis.mat.*object 1 mask has shape \(23, 32\)', 'pascal_parts_mat',
             str(tmp_path / 'mis.mat'))


def test_label_png_bool_png(tmp_path):
    # 1-bit PNGs decode to {0, 1}
    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / 'b.png')
    np.testing.assert_array_equal(decode('label_png', str(tmp_path / 'b.png')),
                                  np.eye(4, dtype=np.uint8))
