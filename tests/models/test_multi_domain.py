"""Multi-domain classification: readers, synthetic data, sampler, classifier, metric."""
import copy
import filecmp
import json
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmengine.optim import OptimWrapper

from mtdense.datasets.io import DataFileError
from mtdense.datasets import (DecathlonDataset, DomainBatchSampler, ImageFolderDomainsDataset,
                              PackDomainInputs)
from mtdense.datasets.synthetic import make_synthetic_multi_domain
from mtdense.evaluation.metrics.decathlon_metric import DecathlonMetric
from mtdense.models.backbones.conv_multitask import ConvMultiTaskBackbone  # noqa: F401
from mtdense.models.multi_domain_classifier import MultiDomainClassifier
from mtdense.registry import MODELS
from mtdense.utils import register_all_modules

register_all_modules()

DOMAINS = ['shapes', 'textures', 'counts']
PIPELINE = [dict(type='LoadMultiTaskImage'), dict(type='PackDomainInputs')]


@pytest.fixture(scope='module')
def synth_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('md'))
    make_synthetic_multi_domain(root, DOMAINS, num_classes=3, per_class=dict(train=4, val=2),
                                size=32, seed=0)
    return root


# --------------------------------------------------------------------- data
def test_synthetic_layout_and_determinism(synth_root, tmp_path):
    meta = json.load(open(os.path.join(synth_root, 'meta.json')))
    assert meta['domains'] == DOMAINS and meta['classes']['counts'] == ['class_0', 'class_1',
                                                                       'class_2']
    for d in DOMAINS:
        for split, n in (('train', 4), ('val', 2)):
            for k in range(3):
                files = sorted(os.listdir(os.path.join(synth_root, d, split, f'class_{k}')))
                assert files == [f'{i:05d}.png' for i in range(n)]
    again = str(tmp_path / 'again')
    # same arguments (domains listed in another order) -> byte-identical images
    make_synthetic_multi_domain(again, DOMAINS[::-1], num_classes=3,
                                per_class=dict(train=4, val=2), size=32, seed=0)
    f = os.path.join('textures', 'train', 'class_1', '00002.png')
    assert filecmp.cmp(os.path.join(synth_root, f), os.path.join(again, f), shallow=False)
    other = str(tmp_path / 'other')
    make_synthetic_multi_domain(other, ['textures'], num_classes=3, per_class=dict(train=4),
                                size=32, seed=1)
    assert not filecmp.cmp(os.path.join(synth_root, f), os.path.join(other, f), shallow=False)
    img = cv2.imread(os.path.join(synth_root, f))
    assert img.shape == (32, 32, 3) and img.std() > 10
    with pytest.raises(ValueError, match='supports 2..5 classes'):
        make_synthetic_multi_domain(str(tmp_path / 'x'), ['counts'], num_classes=9)
    with pytest.raises(ValueError, match='unknown domains'):
        make_synthetic_multi_domain(str(tmp_path / 'x'), ['sketch'])


def test_image_folder_reader(synth_root):
    ds = ImageFolderDomainsDataset(synth_root, split='val', pipeline=PIPELINE)
    assert ds.domains == DOMAINS  # from meta.json
    assert ds.metainfo['num_classes'] == {d: 3 for d in DOMAINS}
    assert len(ds) == 3 * 3 * 2
    info = ds.get_data_info(7)
    assert info['domain'] == 'textures' and info['domain_idx'] == 1 and info['gt_label'] == 0
    assert info['img_path'].endswith(os.path.join('textures', 'val', 'class_0', '00001.png'))
    packed = ds[7]
    assert packed['inputs'].shape == (3, 32, 32) and packed['inputs'].dtype == torch.uint8
    assert packed['data_samples'].gt_label.item() == 0
    assert packed['data_samples'].metainfo['domain'] == 'textures'
    sub = ImageFolderDomainsDataset(synth_root, domains=['counts'], split='train')
    assert len(sub) == 12 and {sub.get_data_info(i)['domain'] for i in range(12)} == {'counts'}
    with pytest.raises(DataFileError, match="domain 'sketch'"):
        ImageFolderDomainsDataset(synth_root, domains=['sketch'])


def test_image_folder_class_mismatch(tmp_path):
    for split, cls in (('train', 'cat'), ('train', 'dog'), ('test', 'cow')):
        os.makedirs(tmp_path / 'sketch' / split / cls)
        cv2.imwrite(str(tmp_path / 'sketch' / split / cls / 'a.jpg'), np.zeros((8, 8, 3), np.uint8))
    ds = ImageFolderDomainsDataset(str(tmp_path), split='train')
    assert ds.metainfo['classes'] == {'sketch': ['cat', 'dog']}
    with pytest.raises(DataFileError, match="class 'cow' of split 'test' is not a class"):
        ImageFolderDomainsDataset(str(tmp_path), split='test')


def write_decathlon(root, domain='dtd', split='train', n_img=4, cats=(10000003, 10000001),
                    annotations=None):
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    images = []
    for i in range(n_img):
        rel = f'data/{domain}/{split}/{i:07d}.jpg'
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        cv2.imwrite(os.path.join(root, rel), np.full((8, 8, 3), i * 10, np.uint8))
        images.append(dict(id=100 + i, file_name=rel, width=8, height=8))
    if annotations is None:
        annotations = [dict(id=i, image_id=100 + i, category_id=cats[i % len(cats)])
                       for i in range(n_img)]
    ann = dict(images=images, annotations=annotations,
               categories=[dict(id=c, name=f'c{c}') for c in cats])
    with open(os.path.join(root, 'annotations', f'{domain}_{split}.json'), 'w') as f:
        json.dump(ann, f)


def test_decathlon_reader(tmp_path):
    root = str(tmp_path)
    write_decathlon(root, 'dtd')
    write_decathlon(root, 'svhn', cats=(20000001, 20000002, 20000003))
    ds = DecathlonDataset(root, domains=['dtd', 'svhn'], split='train')
    # categories sorted by id: 10000001 -> 0, 10000003 -> 1
    assert ds.metainfo['classes']['dtd'] == ['c10000001', 'c10000003']
    assert [ds.get_data_info(i)['gt_label'] for i in range(4)] == [1, 0, 1, 0]
    assert ds.get_data_info(4)['domain'] == 'svhn' and ds.get_data_info(6)['gt_label'] == 2
    assert ds.get_data_info(0)['img_path'] == os.path.join(root, 'data/dtd/train/0000000.jpg')
    assert ds.metainfo['num_classes'] == {'dtd': 2, 'svhn': 3}


def test_decathlon_reader_errors(tmp_path):
    root = str(tmp_path)
    write_decathlon(root, 'dtd', annotations=[dict(id=0, image_id=100, category_id=5)])
    with pytest.raises(DataFileError, match='category_id 5'):
        DecathlonDataset(root, domains=['dtd'])
    write_decathlon(root, 'dtd', annotations=[dict(id=0, image_id=100, category_id=10000001),
                                              dict(id=1, image_id=100, category_id=10000001)])
    with pytest.raises(DataFileError, match='more than one annotation'):
        DecathlonDataset(root, domains=['dtd'])
    write_decathlon(root, 'dtd', annotations=[dict(id=0, image_id=100, category_id=10000001)])
    with pytest.raises(DataFileError, match='image 101 .* has no annotation'):
        DecathlonDataset(root, domains=['dtd'])
    with pytest.raises(DataFileError, match='dtd_val.json: annotation file'):
        DecathlonDataset(root, domains=['dtd'], split='val')
    write_decathlon(root, 'dtd', split='test_stripped', annotations=[])
    with pytest.raises(DataFileError, match='test_mode=True'):
        DecathlonDataset(root, domains=['dtd'], split='test_stripped')
    ds = DecathlonDataset(root, domains=['dtd'], split='test_stripped', test_mode=True)
    assert {ds.get_data_info(i)['gt_label'] for i in range(len(ds))} == {-1}
    write_decathlon(root, 'dtd')
    os.remove(os.path.join(root, 'data/dtd/train/0000002.jpg'))
    with pytest.raises(DataFileError, match='0000002.jpg: image 102'):
        DecathlonDataset(root, domains=['dtd'])


def test_domain_batch_sampler(synth_root):
    ds = ImageFolderDomainsDataset(synth_root, split='train')
    sampler = DefaultSampler(ds, shuffle=True, seed=0)
    batches = list(DomainBatchSampler(sampler, batch_size=5))
    assert len(batches) == len(DomainBatchSampler(sampler, batch_size=5)) == 3 * 3
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(len(ds)))
    for b in batches:
        assert len({ds.get_data_info(i)['domain'] for i in b}) == 1
    dropped = list(DomainBatchSampler(sampler, batch_size=5, drop_last=True))
    assert len(dropped) == 6 and all(len(b) == 5 for b in dropped)


# --------------------------------------------------------------------- model
def make_classifier(method=None):
    method = method or dict(type='ModulationAdapter', rank=2)
    return MODELS.build(dict(
        type='MultiDomainClassifier',
        backbone=dict(type='ConvMultiTaskBackbone', backbone=dict(model_name='mobilenetv2_050'),
                      method=method),
        domains=DOMAINS, num_classes={d: 3 for d in DOMAINS}))


def load_batch(ds, indices):
    return pseudo_collate([ds[i] for i in indices])


def test_classifier_trains_on_synthetic_domains(synth_root):
    torch.manual_seed(0)
    ds = ImageFolderDomainsDataset(synth_root, split='train', pipeline=PIPELINE)
    # shared frozen BN: per-task BN batch statistics of 6 images at 1x1 (32 px / 32) are noise
    model = make_classifier(dict(type='ModulationAdapter', rank=2, norm='frozen'))
    assert isinstance(model, MultiDomainClassifier)
    report = model.parameter_report()
    assert report['backbone_report']['method'] == 'ModulationAdapter'
    assert report['trainable'] == (report['backbone_report']['trainable'] +
                                   sum(report['heads'].values()))
    # one batch per domain, as DomainBatchSampler gives them
    idx = ds.domain_indices()
    batches = [load_batch(ds, idx[d][::2]) for d in DOMAINS]
    optim = OptimWrapper(torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                          lr=3e-3))
    history = []
    for _ in range(5):
        history.append(sum(model.train_step(copy.deepcopy(b), optim)['loss'].item()
                           for b in batches))
    assert history[-1] < 0.6 * history[0], history


def test_mixed_batches_match_per_domain_batches(synth_root):
    torch.manual_seed(0)
    ds = ImageFolderDomainsDataset(synth_root, split='val', pipeline=PIPELINE)
    model = make_classifier(dict(type='DepthwiseSharing', gate=True)).eval()
    mixed = load_batch(ds, [0, 6, 1, 12, 7])  # shapes, textures, shapes, counts, textures
    data = model.data_preprocessor(copy.deepcopy(mixed))
    with torch.no_grad():
        logits = model(**data, mode='tensor')
        assert list(logits) == ['shapes', 'textures', 'counts']
        for d, rows in (('shapes', [0, 1]), ('textures', [6, 7]), ('counts', [12])):
            single = model.data_preprocessor(load_batch(ds, rows))
            torch.testing.assert_close(model(**single, mode='tensor')[d], logits[d],
                                       rtol=1e-4, atol=1e-5)
        preds = model.test_step(copy.deepcopy(mixed))
    assert [p.metainfo['domain'] for p in preds] == ['shapes', 'textures', 'shapes', 'counts',
                                                    'textures']
    assert all(p.pred_score.shape == (3,) and 0 <= p.pred_label.item() < 3 for p in preds)
    metric = DecathlonMetric(baselines={d: 50.0 for d in DOMAINS})
    metric.process(mixed, preds)
    res = metric.evaluate(len(preds))
    assert set(res) == {f'decathlon/{d}/{k}' for d in DOMAINS for k in ('top1', 'S')} | {
        'decathlon/mean_top1', 'decathlon/S'}


def test_classifier_errors(synth_root):
    ds = ImageFolderDomainsDataset(synth_root, split='val', pipeline=PIPELINE)
    model = make_classifier()
    data = model.data_preprocessor(load_batch(ds, [0]))
    with pytest.raises(ValueError, match='data_samples'):
        model(data['inputs'], None, mode='predict')
    data['data_samples'][0].set_metainfo(dict(domain='sketch'))
    with pytest.raises(KeyError, match="domain 'sketch'"):
        model(**data, mode='loss')
    with pytest.raises(KeyError, match='num_classes must have exactly the domains'):
        MultiDomainClassifier(backbone=dict(type='ConvMultiTaskBackbone',
                                            backbone=dict(model_name='mobilenetv2_050'),
                                            method=dict(type='ModulationAdapter')),
                              domains=DOMAINS, num_classes={'shapes': 3})
    assert isinstance(PackDomainInputs(), PackDomainInputs)
