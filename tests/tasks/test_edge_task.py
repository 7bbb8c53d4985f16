"""The edge task through the task mechanism: definition, loss, readers of the three
layouts, metric options (tolerance per dataset), Δm with edge, and the 5-task configs."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData

from mtdense.datasets import NYUDv2MTDataset, PascalContextMTDataset, SyntheticMTDataset
from mtdense.datasets.io import labelmap_edges
from mtdense.datasets.io import DataFileError
from mtdense.datasets.synthetic import SyntheticSceneGenerator
from mtdense.datasets.synthetic.edges import synthetic_edges
from mtdense.evaluation import MultiTaskMetric
from mtdense.evaluation.functional import EdgeStats
from mtdense.registry import MODELS
from mtdense.models.losses.dense_losses import BalancedBCELoss
from mtdense.tasks import TASKS, get_task
from mtdense.visualization.colorize import COLORIZERS


def test_edge_definition():
    edge = get_task('edge')
    assert list(TASKS)[:6] == ['semseg', 'human_parts', 'saliency', 'normals', 'depth', 'edge']
    assert edge.out_channels() == 1 and not edge.has_classes
    assert (edge.primary_metric, edge.higher_is_better) == ('odsF', True)
    assert edge.default_loss == dict(type='BalancedBCELoss', pos_weight=0.95)
    assert edge.default_loss_weight == 50.0
    out = torch.randn(1, 6, 7)
    pred = edge.predictions(out)['pred']
    torch.testing.assert_close(pred, out.sigmoid())
    gt = np.zeros((6, 7), np.uint8)
    gt[2] = 1
    assert edge.resize(gt, (12, 14)).dtype == np.uint8  # nearest, labels stay {0, 1}
    assert set(np.unique(edge.resize(gt, (12, 14)))) == {0, 1}
    rgb = edge.colorize(pred[0].numpy(), COLORIZERS, {})
    assert rgb.shape == (6, 7, 3) and rgb.dtype == np.uint8


def test_balanced_bce_fixed_positive_weight_matches_its_definition():
    torch.manual_seed(0)
    pred = torch.randn(2, 1, 9, 11)
    target = (torch.rand(2, 1, 9, 11) > 0.85).long()
    target[0, 0, :2] = 255
    loss = BalancedBCELoss(pos_weight=0.95)(pred, target)
    valid = target != 255
    pos, neg = valid & (target == 1), valid & (target == 0)
    bce = F.binary_cross_entropy_with_logits(pred, pos.float(), reduction='none')
    expected = (0.95 * bce[pos].sum() + 0.05 * bce[neg].sum()) / valid.sum()
    torch.testing.assert_close(loss, expected)
    # the ASTMT / MTI-Net formulation: BCE with pos_weight w / (1 - w), mean, times (1 - w)
    ref = F.binary_cross_entropy_with_logits(pred[valid], target[valid].float(),
                                             pos_weight=torch.tensor(0.95 / 0.05)) * 0.05
    torch.testing.assert_close(loss, ref)
    # the fixed weight also applies when a batch has no edge pixel (no fallback)
    none = torch.zeros_like(target)
    torch.testing.assert_close(BalancedBCELoss(pos_weight=0.95)(pred, none),
                               0.05 * F.binary_cross_entropy_with_logits(pred, none.float()))
    # the task's default loss is that one
    built = MODELS.build(get_task('edge').default_loss)
    assert isinstance(built, BalancedBCELoss) and built.pos_weight == 0.95
    for bad in (0, 1, 1.5, True, 'x'):
        with pytest.raises(ValueError, match='pos_weight'):
            BalancedBCELoss(pos_weight=bad)
    with pytest.raises(ValueError, match='balanced=False'):
        BalancedBCELoss(pos_weight=0.9, balanced=False)


def test_pascal_edges_are_the_labelmap_edges(fixture_trees):
    from scipy.io import loadmat
    root = fixture_trees['PascalContextMTDataset']
    ds = PascalContextMTDataset(root, split='train',
                                tasks=['semseg', 'edge'], lazy_init=False)
    assert PascalContextMTDataset(root, split='train').tasks == [
        'semseg', 'human_parts', 'saliency', 'normals']  # edge is opt-in
    assert ds.metainfo['edge_max_dist'] == 0.0075
    for i in range(len(ds)):
        s = ds.load_sample(i)
        img_id = ds.get_data_info(i)['img_id']
        labels = loadmat(os.path.join(root, 'pascal-context', 'trainval', f'{img_id}.mat'))[
            'LabelMap']
        np.testing.assert_array_equal(s['gt_edge'], labelmap_edges(labels))
        assert s['gt_edge'].shape == s['img'].shape[:2] and s['gt_edge'].any()


def test_nyud_and_synthetic_edges_are_the_rendered_ones(fixture_trees, tmp_path):
    root = fixture_trees['NYUDv2MTDataset']
    ds = NYUDv2MTDataset(root, split='train', tasks=['edge'], lazy_init=False)
    assert NYUDv2MTDataset(root, split='train').tasks == ['semseg', 'depth', 'normals']
    assert ds.metainfo['edge_max_dist'] == 0.011
    truth = SyntheticSceneGenerator(480, 640, 7)(0)
    np.testing.assert_array_equal(ds.load_sample(0)['gt_edge'], synthetic_edges(truth))

    syn = fixture_trees['SyntheticMTDataset']
    sds = SyntheticMTDataset(syn, split='train', tasks=['semseg', 'edge'], lazy_init=False)
    assert 'edge' not in SyntheticMTDataset(syn, split='train').tasks
    meta = json.load(open(os.path.join(syn, 'meta.json')))
    first = SyntheticSceneGenerator(48, 64, meta['seed'])(0)
    np.testing.assert_array_equal(sds.load_sample(0)['gt_edge'], synthetic_edges(first))


def test_synthetic_tree_without_edges_asks_for_regeneration(fixture_trees, tmp_path):
    import shutil
    old = tmp_path / 'old'
    shutil.copytree(fixture_trees['SyntheticMTDataset'], old)
    shutil.rmtree(old / 'edge')
    with pytest.raises(DataFileError, match='regenerate'):
        SyntheticMTDataset(str(old), split='train', tasks=['edge'], lazy_init=False)
    SyntheticMTDataset(str(old), split='train', lazy_init=False)  # edge not asked for: fine


def _edge_sample(pred, gt):
    return dict(pred_edge=PixelData(data=torch.as_tensor(pred)[None].float()),
                gt_edge=PixelData(data=torch.as_tensor(gt)[None].long()))


def _shifted_line(shift, size=(60, 80)):
    gt = np.zeros(size, np.uint8)
    gt[30, 10:70] = 1
    pred = np.zeros(size, np.float32)
    pred[30 + shift, 10:70] = 0.9
    return pred, gt


def test_metric_tolerance_comes_from_the_dataset_or_the_argument():
    pred, gt = _shifted_line(1)  # 1 px; diagonal 100 px: within 0.011 (1.1 px), not 0.0075
    scores = {}
    for name, meta, kwargs in (('pascal', dict(edge_max_dist=0.0075), {}),
                               ('nyud', dict(edge_max_dist=0.011), {}),
                               ('default', {}, {}),
                               ('argument', dict(edge_max_dist=0.0075),
                                dict(edge_max_dist=0.011))):
        metric = MultiTaskMetric(tasks=['edge'], **kwargs)
        metric.dataset_meta = meta
        metric.process({}, [_edge_sample(pred, gt)])
        scores[name] = metric.compute_metrics(metric.results)
    assert scores['pascal']['edge/odsF'] == 0 == scores['default']['edge/odsF']
    assert scores['nyud']['edge/odsF'] == pytest.approx(100.0)
    assert scores['argument'] == scores['nyud']
    assert set(scores['nyud']) == {'edge/odsF', 'edge/oisF', 'edge/AP'}


def test_metric_matches_edge_stats_and_is_split_invariant():
    rng = np.random.default_rng(0)
    samples = []
    direct = EdgeStats(max_dist=0.011)
    for k in range(4):
        gt = np.zeros((40, 50), np.uint8)
        gt[10 + k, 5:45] = 1
        gt[:, 20 + k] = 1
        gt[0, :] = 255
        pred = np.clip(gt * 0.7 + rng.random(gt.shape) * 0.4, 0, 1).astype(np.float32)
        pred[gt == 255] = 0
        samples.append(_edge_sample(pred, gt))
        direct.update(pred, gt)
    whole = MultiTaskMetric(tasks=['edge'], edge_max_dist=0.011)
    whole.process({}, samples)
    parts = [MultiTaskMetric(tasks=['edge'], edge_max_dist=0.011) for _ in range(2)]
    parts[0].process({}, samples[:1])
    parts[1].process({}, samples[1:])
    expected = {f'edge/{k}': v for k, v in direct.compute().items()}
    assert whole.compute_metrics(whole.results) == pytest.approx(expected)
    assert whole.compute_metrics(parts[0].results + parts[1].results) == pytest.approx(expected)


def test_delta_m_includes_edge(tmp_path):
    base = tmp_path / 'baselines.json'
    base.write_text(json.dumps(dict(
        dataset='hand-made', backbone='none', source='this test',
        metrics=dict(saliency=dict(mIoU=50.0), edge=dict(odsF=50.0)))))
    pred, gt = _shifted_line(0)
    sal_gt = np.zeros((60, 80), np.uint8)
    sal_gt[20:40, 20:60] = 1
    metric = MultiTaskMetric(tasks=['saliency', 'edge'], baselines=str(base))
    metric.dataset_meta = {}
    sample = _edge_sample(pred, gt)
    sample.update(pred_saliency=PixelData(data=torch.as_tensor(sal_gt)[None].float()),
                  gt_saliency=PixelData(data=torch.as_tensor(sal_gt)[None].long()))
    metric.process({}, [sample])
    out = metric.compute_metrics(metric.results)
    assert out['edge/odsF'] == pytest.approx(100.0) and out['saliency/mIoU'] == pytest.approx(100)
    assert out['multi_task/delta_m'] == pytest.approx(100.0)  # both +100 % over 50
