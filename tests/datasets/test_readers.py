"""Dataset readers on tiny trees in the exact PASCAL_MT / NYUD_MT / synthetic layouts."""
import json
import os

import cv2
import numpy as np
import pytest

from helpers import fixtures as fx
from mtdense.datasets import (NYU_SHARED_CONTEXT_CLASS_IDS, NYUV2_40_CLASSES, PASCAL_VOC_CLASSES,
                              DataFileError, NYUDv2MTDataset, PascalContextMTDataset,
                              SyntheticMTDataset)
from mtdense.registry import DATASETS
from mtdense.tasks import HUMAN_PARTS_CLASSES

H, W = fx.H, fx.W


@pytest.fixture
def pascal(tmp_path):
    root = str(tmp_path / 'PASCAL_MT')
    return root, fx.make_pascal_mt(root)


@pytest.fixture
def nyud(tmp_path):
    root = str(tmp_path / 'NYUD_MT')
    return root, fx.make_nyud_mt(root)


@pytest.fixture
def synth(tmp_path):
    root = str(tmp_path / 'synthetic')
    return root, fx.make_synthetic(root)


def _expected_normals_png(rgb, labelmap=None, valid_classes=None):
    n = 2.0 * rgb.astype(np.float64) / 255.0 - 1.0
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    if labelmap is not None:
        n[~np.isin(labelmap, valid_classes)] = 0.0
    return n


# ---------------------------------------------------------------------- PASCAL-Context
def test_pascal_counts_metainfo_and_infos(pascal):
    root, _ = pascal
    train = PascalContextMTDataset(root, split='train')
    val = PascalContextMTDataset(root, split='val')
    assert len(train) == len(fx.PASCAL_SPLITS['train']) == 2
    assert len(val) == len(fx.PASCAL_SPLITS['val']) == 1
    meta = train.metainfo
    assert meta['classes'] == PASCAL_VOC_CLASSES and len(meta['classes']) == 21
    assert meta['classes'][0] == 'background' and meta['classes'][15] == 'person'
    assert meta['num_classes'] == 21 and meta['ignore_index'] == 255
    assert meta['palette'][0] == [0, 0, 0] and meta['palette'][1] == [128, 0, 0]
    assert meta['palette'][15] == [192, 128, 128] and meta['palette'][20] == [0, 64, 128]
    assert meta['tasks'] == ['semseg', 'human_parts', 'saliency', 'normals']
    assert tuple(meta['part_classes']) == HUMAN_PARTS_CLASSES

    info = train.get_data_info(1)
    img_id = fx.PASCAL_SPLITS['train'][1]
    assert info['img_id'] == img_id and info['sample_idx'] == 1
    assert info['img_path'] == os.path.join(root, 'JPEGImages', f'{img_id}.jpg')
    ann = info['ann_info']
    assert set(ann) == {'semseg', 'human_parts', 'saliency', 'normals'}
    assert ann['semseg']['decoder'] == 'label_png'
    assert ann['semseg']['path'] == os.path.join(root, 'semseg', 'VOC12', f'{img_id}.png')
    assert ann['human_parts']['path'] == os.path.join(root, 'human_parts', f'{img_id}.mat')
    assert ann['saliency']['path'] == os.path.join(root, 'sal_distill', f'{img_id}.png')
    assert ann['normals']['path'] == os.path.join(root, 'normals_distill', f'{img_id}.png')
    assert ann['normals']['valid_mask_mat'] == os.path.join(root, 'pascal-context', 'trainval',
                                                            f'{img_id}.mat')
    # the first id has its semseg only under semseg/pascal-context (fallback)
    first = train.get_data_info(0)['ann_info']['semseg']['path']
    first_id = fx.PASCAL_SPLITS['train'][0]
    assert first == os.path.join(root, 'semseg', 'pascal-context', f'{first_id}.png')


def test_pascal_decoded_values(pascal):
    root, truth = pascal
    ds = PascalContextMTDataset(root, split='train')
    for idx, img_id in enumerate(fx.PASCAL_SPLITS['train']):
        s = ds.load_sample(idx)
        t = truth[img_id]
        assert s['img_id'] == img_id
        jpg = cv2.imread(os.path.join(root, 'JPEGImages', f'{img_id}.jpg'))[..., ::-1]
        np.testing.assert_array_equal(s['img'], jpg)
        np.testing.assert_array_equal(s['gt_semseg'], t['semseg'])
        np.testing.assert_array_equal(s['gt_human_parts'], t['parts'])
        np.testing.assert_array_equal(s['gt_saliency'], (t['sal_raw'] >= 128).astype(np.uint8))
        assert list(s['gt_saliency'][0, :4]) == [0, 0, 1, 1]  # 126, 127, 128, 129
        exp = _expected_normals_png(t['normals_rgb'], t['labelmap'], NYU_SHARED_CONTEXT_CLASS_IDS)
        np.testing.assert_allclose(s['gt_normals'], exp, atol=1e-6)
        valid = np.isin(t['labelmap'], [284, 440])
        assert valid.any() and (~valid).any()
        assert (np.linalg.norm(s['gt_normals'], axis=-1)[~valid] == 0).all()
    # second train image has no person -> all human parts ignored
    assert (ds.load_sample(1)['gt_human_parts'] == 255).all()


def test_pascal_normals_valid_classes_argument(pascal):
    root, truth = pascal
    ds = PascalContextMTDataset(root, split='val', tasks=['normals'], normals_valid_classes=[2])
    img_id = fx.PASCAL_SPLITS['val'][0]
    t = truth[img_id]
    exp = _expected_normals_png(t['normals_rgb'], t['labelmap'], [2])
    np.testing.assert_allclose(ds.load_sample(0)['gt_normals'], exp, atol=1e-6)


def test_nyu_shared_class_table():
    ids = NYU_SHARED_CONTEXT_CLASS_IDS
    assert len(ids) == len(set(ids)) == 170
    assert all(1 <= i <= 459 for i in ids)
    assert {68, 72, 158, 284, 397, 427, 440, 454} <= set(ids)  # ceiling chair floor person ...
    assert 2 not in ids and 431 not in ids  # aeroplane, unknown


def test_pascal_task_selection(pascal):
    root, _ = pascal
    ds = PascalContextMTDataset(root, split='train', tasks=['saliency', 'semseg'])
    assert ds.metainfo['tasks'] == ['saliency', 'semseg']
    assert set(ds.get_data_info(0)['ann_info']) == {'saliency', 'semseg'}
    s = ds.load_sample(0)
    assert {k for k in s if k.startswith('gt_')} == {'gt_saliency', 'gt_semseg'}
    with pytest.raises(KeyError, match='segmentation'):
        PascalContextMTDataset(root, tasks=['segmentation'])
    with pytest.raises(ValueError, match=r"\['depth'\] are not provided"):
        PascalContextMTDataset(root, tasks=['semseg', 'depth'])


def test_pascal_build_from_registry_with_pipeline(pascal):
    root, _ = pascal
    seen = []

    def record(results):
        seen.append(results['img_id'])
        results['touched'] = True
        return results

    ds = DATASETS.build(dict(type='PascalContextMTDataset', data_root=root, split='val',
                             tasks=['semseg'], pipeline=[record]))
    assert isinstance(ds, PascalContextMTDataset)
    out = ds[0]
    assert out['touched'] and seen == [fx.PASCAL_SPLITS['val'][0]]
    assert out['ann_info']['semseg']['decoder'] == 'label_png'


def test_pascal_missing_files(pascal):
    root, _ = pascal
    img_id = fx.PASCAL_SPLITS['train'][1]
    os.remove(os.path.join(root, 'sal_distill', f'{img_id}.png'))
    with pytest.raises(DataFileError, match=f'sal_distill.*{img_id}.png.*saliency.*{img_id}'):
        PascalContextMTDataset(root, split='train')
    PascalContextMTDataset(root, split='train', tasks=['semseg'])  # not needed -> fine

    os.remove(os.path.join(root, 'pascal-context', 'trainval', f'{img_id}.mat'))
    with pytest.raises(DataFileError, match=f'trainval.*{img_id}.mat.*valid_mask_mat'):
        PascalContextMTDataset(root, split='train', tasks=['normals'])

    os.remove(os.path.join(root, 'semseg', 'VOC12', f'{img_id}.png'))
    with pytest.raises(DataFileError, match=f'VOC12.*{img_id}.*pascal-context'):
        PascalContextMTDataset(root, split='train', tasks=['semseg'])

    os.remove(os.path.join(root, 'JPEGImages', f'{img_id}.jpg'))
    with pytest.raises(DataFileError, match=f'JPEGImages.*{img_id}.jpg.*image of id'):
        PascalContextMTDataset(root, split='train', tasks=['saliency'])


def test_pascal_missing_parts_file(pascal):
    root, _ = pascal
    img_id = fx.PASCAL_SPLITS['train'][0]
    os.remove(os.path.join(root, 'human_parts', f'{img_id}.mat'))
    with pytest.raises(DataFileError, match=f'human_parts.*{img_id}.mat'):
        PascalContextMTDataset(root, split='train', tasks=['human_parts'])
    ds = PascalContextMTDataset(root, split='train', tasks=['human_parts'],
                                allow_missing_parts=True)
    assert ds.get_data_info(0)['ann_info']['human_parts']['path'] is None
    gt = ds.load_sample(0)['gt_human_parts']
    assert gt.shape == (H, W) and (gt == 255).all()


def test_pascal_parts_person_fill(pascal):
    root, truth = pascal
    ds = PascalContextMTDataset(root, split='train', tasks=['human_parts'], parts_person_fill=255)
    gt = ds.load_sample(0)['gt_human_parts']
    exp = truth[fx.PASCAL_SPLITS['train'][0]]['parts'].copy()
    exp[fx.box(2, 22, 2, 14) & (exp == 0)] = 255
    np.testing.assert_array_equal(gt, exp)


def test_pascal_corrupt_image_and_wrong_size(pascal):
    root, _ = pascal
    img_id = fx.PASCAL_SPLITS['train'][0]
    ds = PascalContextMTDataset(root, split='train', tasks=['saliency'])
    sal_path = os.path.join(root, 'sal_distill', f'{img_id}.png')
    fx.write_gray_png(sal_path, np.zeros((H + 2, W), np.uint8))
    with pytest.raises(DataFileError, match=rf'{img_id}.png: saliency map.*\(26, 32\).*\(24, 32\)'):
        ds.load_sample(0)
    img_path = os.path.join(root, 'JPEGImages', f'{img_id}.jpg')
    with open(img_path, 'wb') as f:
        f.write(b'\xff\xd8 definitely not a jpeg' * 4)
    with pytest.raises(DataFileError, match=f'{img_id}.jpg.*cannot decode'):
        ds.load_sample(0)


def test_split_file_errors(pascal):
    root, _ = pascal
    with pytest.raises(DataFileError, match=r"Context.test\.txt.*split 'test' not found.*'train'"):
        PascalContextMTDataset(root, split='test')
    with open(os.path.join(root, 'ImageSets', 'Context', 'empty.txt'), 'w') as f:
        f.write('\n\n')
    with pytest.raises(DataFileError, match=r"empty\.txt.*lists no ids"):
        PascalContextMTDataset(root, split='empty')
    with open(os.path.join(root, 'ImageSets', 'Context', 'dup.txt'), 'w') as f:
        f.write('2008_000002\n2008_000002\n')
    with pytest.raises(DataFileError, match=r"dup\.txt:2.*listed twice"):
        PascalContextMTDataset(root, split='dup')
    with pytest.raises(DataFileError, match='not a directory'):
        PascalContextMTDataset(os.path.join(root, 'nowhere'))


def test_lazy_init_and_indices(pascal):
    root, _ = pascal
    ds = PascalContextMTDataset(root, split='train', tasks=['semseg'], lazy_init=True)
    assert not ds._fully_initialized
    assert len(ds) == 2 and ds._fully_initialized
    sub = PascalContextMTDataset(root, split='train', tasks=['semseg'], indices=[1])
    assert len(sub) == 1 and sub.get_data_info(0)['img_id'] == fx.PASCAL_SPLITS['train'][1]


# ------------------------------------------------------------------------------ NYUD-v2
def test_nyud_counts_and_values(nyud):
    root, truth = nyud
    train = NYUDv2MTDataset(root, split='train')
    val = NYUDv2MTDataset(root, split='val')
    assert len(train) == 3 and len(val) == 2
    meta = val.metainfo
    assert meta['classes'] == NYUV2_40_CLASSES and meta['num_classes'] == 40
    assert meta['classes'][0] == 'wall' and meta['classes'][-1] == 'otherprop'
    assert len(meta['palette']) == 40 and [0, 0, 0] not in meta['palette']
    assert meta['tasks'] == ['semseg', 'depth', 'normals']
    for idx, img_id in enumerate(fx.NYUD_SPLITS['val']):
        s = val.load_sample(idx)
        t = truth[img_id]
        raw = t['seg_raw']
        exp = np.where(raw == 0, 255, raw.astype(np.int64) - 1).astype(np.uint8)
        np.testing.assert_array_equal(s['gt_semseg'], exp)
        assert list(s['gt_semseg'][0, :3]) == [255, 0, 39]  # raw 0, 1, 40
        np.testing.assert_array_equal(s['gt_depth'], t['depth'])
        assert s['gt_depth'].dtype == np.float32 and (s['gt_depth'][:, :3] == 0).all()
        n = t['normals'].astype(np.float64)
        norm = np.linalg.norm(n, axis=-1, keepdims=True)
        exp_n = np.where(norm > 0, n / np.where(norm > 0, norm, 1), 0)
        np.testing.assert_allclose(s['gt_normals'], exp_n, atol=1e-6)
        assert (s['gt_normals'][-2:] == 0).all()
    info = val.get_data_info(0)
    assert info['img_path'] == os.path.join(root, 'images', '0004.jpg')
    assert info['ann_info']['semseg'] == dict(
        path=os.path.join(root, 'segmentation', '0004.png'), decoder='label_png_minus1',
        num_classes=40)


def test_nyud_edge_not_required_and_task_errors(nyud):
    root, _ = nyud
    import shutil
    shutil.rmtree(os.path.join(root, 'edge'))
    ds = NYUDv2MTDataset(root, split='val', tasks=['depth'])
    assert len(ds) == 2
    with pytest.raises(ValueError, match=r"\['human_parts'\] are not provided"):
        NYUDv2MTDataset(root, tasks=['human_parts'])
    with pytest.raises(KeyError, match='edges'):
        NYUDv2MTDataset(root, tasks=['edges'])


@pytest.mark.parametrize('bad,match', [(np.nan, 'NaN'), (-1.0, 'negative')])
def test_nyud_bad_depth(nyud, bad, match):
    root, truth = nyud
    d = truth['0005']['depth'].copy()
    d[4, 4] = bad
    np.save(os.path.join(root, 'depth', '0005.npy'), d)
    # found when the dataset is built (the default data_check decodes these samples)...
    with pytest.raises(DataFileError, match=f'(?s)1 defect.*0005.npy.*{match}'):
        NYUDv2MTDataset(root, split='val', tasks=['depth'])
    # ...and by the decoder itself
    ds = NYUDv2MTDataset(root, split='val', tasks=['depth'], data_check='off')
    ds.load_sample(0)  # the other sample is fine
    with pytest.raises(DataFileError, match=f'0005.npy.*{match}'):
        ds.load_sample(1)


def test_nyud_wrong_size_and_missing(nyud):
    root, _ = nyud
    fx.write_gray_png(os.path.join(root, 'segmentation', '0001.png'),
                      np.ones((H, W - 4), np.uint8))
    # the header check at build time compares every map's size with its image
    with pytest.raises(DataFileError, match=r'0001.png \(id 0001\): semseg: size \(h, w\) '
                                            r'\(24, 28\) differs from its image \(24, 32\)'):
        NYUDv2MTDataset(root, split='train', tasks=['semseg'])
    ds = NYUDv2MTDataset(root, split='train', tasks=['semseg'], data_check='off')
    with pytest.raises(DataFileError, match=r'0001.png: semseg map.*\(24, 28\).*\(24, 32\)'):
        ds.load_sample(0)
    os.remove(os.path.join(root, 'normals', '0003.npy'))
    with pytest.raises(DataFileError, match=r"normals.0003\.npy.*'0003'"):
        NYUDv2MTDataset(root, split='train')
    os.remove(os.path.join(root, 'gt_sets', 'val.txt'))
    with pytest.raises(DataFileError, match=r"gt_sets.val\.txt.*not found"):
        NYUDv2MTDataset(root, split='val')


# ---------------------------------------------------------------------------- synthetic
def test_synthetic_all_tasks(synth):
    root, truth = synth
    ds = SyntheticMTDataset(root, split='train')
    assert len(ds) == 2 and len(SyntheticMTDataset(root, split='val')) == 1
    meta = ds.metainfo
    assert list(meta['classes']) == fx.SYNTH_CLASSES and meta['num_classes'] == 5
    assert meta['palette'] == fx.SYNTH_PALETTE
    assert meta['tasks'] == ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
    assert ds.meta['camera']['fx'] == 30.0
    for idx, img_id in enumerate(fx.SYNTH_SPLITS['train']):
        s = ds.load_sample(idx)
        t = truth[img_id]
        np.testing.assert_array_equal(s['img'], t['img'])  # lossless PNG
        raw = t['seg_raw']
        np.testing.assert_array_equal(
            s['gt_semseg'], np.where(raw == 0, 255, raw.astype(int) - 1).astype(np.uint8))
        np.testing.assert_array_equal(s['gt_human_parts'], t['parts'])
        np.testing.assert_array_equal(s['gt_saliency'], (t['sal'] == 255).astype(np.uint8))
        np.testing.assert_allclose(s['gt_normals'], t['normals'], atol=1e-6)
        assert (s['gt_normals'][0] == 0).all()
        np.testing.assert_array_equal(s['gt_depth'], t['depth'])
    assert (ds.load_sample(1)['gt_human_parts'] == 255).all()
    info = ds.get_data_info(0)['ann_info']
    assert info['semseg']['decoder'] == 'label_png_minus1'  # NYUD-v2 decoders
    assert info['depth']['decoder'] == 'depth_npy' and info['normals']['decoder'] == 'normals_npy'
    assert info['human_parts']['decoder'] == 'parts_png'
    assert info['saliency']['decoder'] == 'saliency_png'


def test_synthetic_label_out_of_range(synth):
    root, _ = synth
    bad = np.zeros((H, W), np.uint8)
    bad[0, 0] = 6  # 5 classes -> stored values 0..5
    fx.write_gray_png(os.path.join(root, 'segmentation', '000002.png'), bad)
    with pytest.raises(DataFileError, match=r'(?s)defect.*000002.png.*\[6\]'):
        SyntheticMTDataset(root, split='val', tasks=['semseg'])
    ds = SyntheticMTDataset(root, split='val', tasks=['semseg'], data_check='off')
    with pytest.raises(DataFileError, match=r'000002.png.*\[6\]'):
        ds.load_sample(0)


@pytest.mark.parametrize('content,match', [
    (None, 'meta.json not found'),
    ('{not json', 'cannot parse'),
    ('[1, 2]', 'JSON object'),
    (json.dumps(dict(palette=[[0, 0, 0]])), '"classes"'),
    (json.dumps(dict(classes=['a', 'b'], palette=[[0, 0, 0]])), '"palette"'),
    (json.dumps(dict(classes=['a'], palette=[[0, 0, 300]])), '"palette"'),
    (json.dumps(dict(classes=['a', 'a'], palette=[[0, 0, 0], [1, 1, 1]])), 'twice'),
])
def test_synthetic_bad_meta(synth, content, match):
    root, _ = synth
    path = os.path.join(root, 'meta.json')
    os.remove(path)
    if content is not None:
        with open(path, 'w') as f:
            f.write(content)
    with pytest.raises(DataFileError, match=f'meta.json.*{match}'):
        SyntheticMTDataset(root, split='train')
