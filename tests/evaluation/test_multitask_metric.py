"""MultiTaskMetric end to end: data samples in, per-task metrics and Δm out, DDP-exact."""
import json
import math
import os
import pickle
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator

from mtdense.evaluation import (MultiTaskMetric, delta_m, depth_scores, format_table, miou,
                                normals_scores, saliency_scores)
from mtdense.registry import METRICS
from mtdense.structures import MultiTaskDataSample

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
C = 5
META = {'classes': [f'c{i}' for i in range(C)]}
SIZES = [(12, 16), (10, 14), (16, 12), (8, 8), (12, 10)]


def _unit(x, axis=0):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def make_arrays(i):
    """Deterministic numpy (pred, gt) per task for sample i, data-sample layouts."""
    rng = np.random.default_rng(100 + i)
    h, w = SIZES[i % len(SIZES)]
    out = {}
    gt = rng.integers(0, C, (1, h, w))
    gt[rng.random((1, h, w)) < 0.1] = 255
    pred = np.where(rng.random((1, h, w)) < 0.6, np.where(gt == 255, 0, gt),
                    rng.integers(0, C, (1, h, w)))
    out['semseg'] = (pred, gt)
    parts_gt = rng.integers(0, 7, (1, h, w))
    if i == 0:  # no person in image 0
        parts_gt[:] = 255
    out['human_parts'] = (rng.integers(0, 7, (1, h, w)), parts_gt)
    sal_gt = (rng.random((1, h, w)) < 0.4).astype(np.int64)
    sal_gt[:, 0, :3] = 255
    out['saliency'] = (np.clip(0.5 * sal_gt + 0.6 * rng.random((1, h, w)), 0, 1), sal_gt)
    n_gt = _unit(rng.normal(size=(3, h, w)))
    n_gt[:, rng.random((h, w)) < 0.2] = 0
    out['normals'] = (_unit(n_gt + 0.4 * rng.normal(size=(3, h, w))).astype(np.float32),
                      n_gt.astype(np.float32))
    d_gt = rng.uniform(0.5, 5, (1, h, w))
    d_gt[rng.random((1, h, w)) < 0.15] = 0
    out['depth'] = (d_gt * rng.uniform(0.7, 1.3, (1, h, w)) + 0.01, d_gt)
    return out


def make_sample(i, tasks=TASKS):
    arrs = make_arrays(i)
    s = MultiTaskDataSample(metainfo=dict(img_path=f'img{i}.png', tasks=list(tasks)))
    for t in tasks:
        pred, gt = arrs[t]
        s.set_pred(t, torch.from_numpy(pred))
        s.set_gt(t, torch.from_numpy(gt))
    return s


def run_metric(metric, indices, batch=2, as_dict=False):
    for k in range(0, len(indices), batch):
        samples = [make_sample(i) for i in indices[k:k + batch]]
        if as_dict:
            samples = [s.to_dict() for s in samples]
        metric.process({}, samples)
    return metric


def new_metric(**kw):
    m = MultiTaskMetric(**kw)
    m.dataset_meta = META
    return m


def test_end_to_end_matches_functional_on_all_pixels():
    n = 5
    metric = run_metric(new_metric(), list(range(n)))
    assert len(metric.results) == n  # one record per sample (mmengine drops padding by count)
    res = metric.compute_metrics(metric.results)
    arrs = [make_arrays(i) for i in range(n)]

    def col(t, j, squeeze=True):
        return [a[t][j][0] if squeeze else a[t][j] for a in arrs]

    ref = miou(col('semseg', 0), col('semseg', 1), C)
    assert res['semseg/mIoU'] == pytest.approx(ref['mIoU'])
    assert res['semseg/pixAcc'] == pytest.approx(ref['pixAcc'])
    ref = miou(col('human_parts', 0)[1:], col('human_parts', 1)[1:], 7)  # image 0: no person
    assert res['human_parts/mIoU'] == pytest.approx(ref['mIoU'])
    ref = saliency_scores(col('saliency', 0), col('saliency', 1))
    assert (res['saliency/mIoU'], res['saliency/maxF']) == pytest.approx(
        (ref['mIoU'], ref['maxF']))
    ref = normals_scores(col('normals', 0, False), col('normals', 1, False), channel_axis=0)
    for k in ('mErr', 'median', 'rmse', '<11.25', '<22.5', '<30'):
        assert res[f'normals/{k}'] == pytest.approx(ref[k])
    ref = depth_scores(col('depth', 0), col('depth', 1))
    for k in ('rmse', 'log_rmse', 'abs_rel', 'delta1', 'delta2', 'delta3'):
        assert res[f'depth/{k}'] == pytest.approx(ref[k])
    assert 'multi_task/delta_m' not in res
    assert all(math.isfinite(v) for v in res.values())
    # sanity: random-ish predictions give mid-range values, not degenerate 0/100
    assert 0 < res['semseg/mIoU'] < 100 and 0 < res['normals/mErr'] < 90


def test_dict_samples_through_mmengine_evaluator_equal_data_elements():
    direct = run_metric(new_metric(), list(range(4)))
    expected = direct.compute_metrics(direct.results)
    evaluator = Evaluator(METRICS.build(dict(type='MultiTaskMetric')))
    evaluator.dataset_meta = META  # as the runner does
    for k in range(0, 4, 2):  # Evaluator converts data elements to dicts
        evaluator.process([make_sample(i) for i in range(k, k + 2)])
    got = evaluator.evaluate(4)
    assert got == pytest.approx(expected)
    as_dict = run_metric(new_metric(), list(range(4)), as_dict=True)
    assert as_dict.compute_metrics(as_dict.results) == pytest.approx(expected)


def test_two_ranks_concatenated_equal_single_instance():
    n = 5
    single = run_metric(new_metric(), list(range(n)))
    expected = single.compute_metrics(single.results)
    # mmengine's DefaultSampler: rank r takes indices r, r + 2, ... of the padded list;
    # collect_results interleaves the ranks' records and truncates to the dataset size.
    padded = list(range(n)) + [0]
    r0 = run_metric(new_metric(), padded[0::2], batch=1)
    r1 = run_metric(new_metric(), padded[1::2], batch=3)
    gathered = [rec for pair in zip(r0.results, r1.results) for rec in pair][:n]
    got = new_metric().compute_metrics(gathered)
    assert got == expected  # same records, same order: bit-identical
    # plain concatenation (other order): equal up to float summation order
    r0 = run_metric(new_metric(), [0, 1, 2])
    r1 = run_metric(new_metric(), [3, 4])
    got = new_metric().compute_metrics(r0.results + r1.results)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k], rel=1e-12, abs=1e-12), k


def _ddp_worker(rank, world, port, out_dir, n):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        padded = list(range(n)) + list(range(-n % world))
        metric = run_metric(new_metric(), padded[rank::world])
        res = metric.evaluate(n)
        with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
            pickle.dump(res, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason='no torch.distributed')
def test_real_gloo_ddp_evaluate_equals_single_process(tmp_path):
    n = 5
    single = run_metric(new_metric(), list(range(n)))
    expected = single.compute_metrics(single.results)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), n), nprocs=2, join=True)
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.pkl', 'rb') as f:
            assert pickle.load(f) == expected  # broadcast to every rank, exact


def test_delta_m_against_baselines_file(tmp_path):
    base = {'semseg': {'mIoU': 40.0}, 'human_parts': {'mIoU': 20.0},
            'saliency': {'mIoU': 50.0}, 'normals': {'mErr': 30.0}, 'depth': {'rmse': 0.9}}
    path = tmp_path / 'base.json'
    path.write_text(json.dumps({'dataset': 'toy', 'backbone': 'none', 'metrics': base,
                                'source': 'test fixture'}))
    metric = run_metric(new_metric(baselines=str(path)), [0, 1, 2])
    res = metric.compute_metrics(metric.results)
    m = {'semseg': res['semseg/mIoU'], 'human_parts': res['human_parts/mIoU'],
         'saliency': res['saliency/mIoU'], 'normals': res['normals/mErr'],
         'depth': res['depth/rmse']}
    by_hand = (100 / 5) * ((m['semseg'] - 40) / 40 + (m['human_parts'] - 20) / 20 +
                           (m['saliency'] - 50) / 50 - (m['normals'] - 30) / 30 -
                           (m['depth'] - 0.9) / 0.9)
    assert res['multi_task/delta_m'] == pytest.approx(by_hand)
    assert res['multi_task/delta_m'] == pytest.approx(
        delta_m(m, {t: next(iter(v.values())) for t, v in base.items()}))
    table = format_table(res)
    assert 'multi_task' in table and 'delta_m' in table and 'log_rmse' in table
    assert f"{res['depth/rmse']:.4f}" in table and f"{res['semseg/mIoU']:.2f}" in table


def test_baselines_missing_task_fails_at_construction(tmp_path):
    path = tmp_path / 'base.json'
    path.write_text(json.dumps({'dataset': 'toy', 'backbone': 'none', 'source': 'x',
                                'metrics': {'semseg': {'mIoU': 40.0}}}))
    with pytest.raises(KeyError, match="no baseline for task 'depth'"):
        MultiTaskMetric(tasks=['semseg', 'depth'], baselines=str(path))
    # tasks inferred from samples: checked when computing
    metric = run_metric(new_metric(baselines=str(path)), [0])
    with pytest.raises(KeyError, match="no baseline for task 'human_parts'"):
        metric.compute_metrics(metric.results)


def test_task_selection_and_saliency_switch():
    metric = run_metric(new_metric(tasks=['saliency', 'depth'], saliency_beta_switch=True),
                        [0, 1])
    res = metric.compute_metrics(metric.results)
    assert sorted({k.split('/')[0] for k in res}) == ['depth', 'saliency']
    arrs = [make_arrays(i)['saliency'] for i in (0, 1)]
    ref = saliency_scores([a[0][0] for a in arrs], [a[1][0] for a in arrs], pooled_beta2=0.3)
    assert res['saliency/maxF'] == pytest.approx(ref['maxF'])
    assert res['saliency/mIoU'] == pytest.approx(ref['mIoU'])


def test_saliency_protocol_astmt_and_eval_protocol_recorded():
    arrs = [make_arrays(i)['saliency'] for i in (0, 1, 2)]
    ref = saliency_scores([a[0][0] for a in arrs], [a[1][0] for a in arrs], empty_pr=0)
    metric = run_metric(new_metric(tasks=['saliency'], saliency_protocol='astmt'), [0, 1, 2])
    res = metric.compute_metrics(metric.results)
    assert res['saliency/maxF'] == pytest.approx(ref['maxF'])
    assert metric.eval_protocol == 'native'  # samples without the meta key: native
    with pytest.raises(ValueError, match="saliency_protocol must be one of"):
        MultiTaskMetric(saliency_protocol='ASTMT')


def test_mixed_eval_protocols_are_an_error():
    metric = new_metric(tasks=['depth'])
    for i, protocol in enumerate(['native', 'resized']):
        s = make_sample(i, tasks=['depth'])
        s.set_metainfo(dict(eval_protocol=protocol))
        metric.process({}, [s])
    with pytest.raises(ValueError, match=r"mix evaluation protocols \['native', 'resized'\]"):
        metric.compute_metrics(metric.results)


def test_nan_to_zero_switch_changes_semseg_only_for_absent_classes():
    s = MultiTaskDataSample(metainfo=dict(img_path='x.png'))
    s.set_gt('semseg', torch.tensor([[[0, 0, 1]]]))
    s.set_pred('semseg', torch.tensor([[[0, 1, 1]]]))
    for nan_to_zero, expected in ((True, (50 + 50) / 4), (False, (50 + 50) / 2)):
        m = MultiTaskMetric(num_classes={'semseg': 4}, nan_to_zero=nan_to_zero)
        m.process({}, [s])
        assert m.compute_metrics(m.results)['semseg/mIoU'] == pytest.approx(expected)


def test_clear_errors():
    s = make_sample(0, tasks=['semseg'])
    s.set_pred('semseg', torch.zeros(1, 5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r'img0\.png.*semseg.*resized to it \(ori_shape\)'):
        new_metric().process({}, [s])
    s = make_sample(0, tasks=['depth'])
    del s.gt_depth
    with pytest.raises(KeyError, match='no ground truth "gt_depth"'):
        new_metric().process({}, [s])
    with pytest.raises(KeyError, match='no prediction "pred_semseg"'):
        new_metric(tasks=['semseg', 'depth']).process({}, [make_sample(1, tasks=['depth'])])
    s = make_sample(0, tasks=['saliency'])
    s.set_pred('saliency', torch.full((1,) + SIZES[0], 4.0))
    with pytest.raises(ValueError, match=r"img0\.png, task 'saliency': .*apply the sigmoid"):
        new_metric().process({}, [s])
    s = MultiTaskDataSample(metainfo=dict(img_path='y.png'))
    s.set_pred('sem_seg', torch.zeros(1, 2, 2))
    with pytest.raises(KeyError, match='not a known task'):
        new_metric().process({}, [s])
    with pytest.raises(ValueError, match='number of classes of task .semseg. unknown'):
        MultiTaskMetric().process({}, [make_sample(0, tasks=['semseg'])])
    with pytest.raises(ValueError, match='not a segmentation task'):
        MultiTaskMetric(num_classes={'depth': 3})
