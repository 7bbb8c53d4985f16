"""Functional metrics on tiny hand-computed cases (docs/evaluation.md definitions)."""
import math

import numpy as np
import pytest

from mtdense.evaluation.functional import (DepthStats, NormalsStats, SaliencyStats, SegStats,
                                           angular_error, default_saliency_thresholds, delta_m,
                                           depth_scores, miou, normals_scores, relative_gains,
                                           saliency_scores)

# ----------------------------------------------------------------------------- seg
# valid (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,0); the last pixel is ignored.
SEG_GT = np.array([[0, 0, 1], [1, 2, 255]])
SEG_PRED = np.array([[0, 1, 1], [1, 0, 2]])


def test_miou_hand_computed_with_absent_class_counting_zero():
    out = miou(SEG_PRED, SEG_GT, num_classes=4)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3;
    # class 2: FN 1 (its prediction on the ignored pixel does not count) -> 0;
    # class 3: neither annotated nor predicted -> counts 0 (MTL convention).
    np.testing.assert_allclose(out['IoU'][:3], [100 / 3, 200 / 3, 0.0])
    assert math.isnan(out['IoU'][3])
    assert out['mIoU'] == pytest.approx(25.0)
    assert out['pixAcc'] == pytest.approx(60.0)
    assert out['confusion'].sum() == 5
    assert out['confusion'][2, 0] == 1 and out['confusion'][:, 2].sum() == 0


def test_miou_nanmean_option_leaves_absent_class_out():
    out = miou(SEG_PRED, SEG_GT, num_classes=4, nan_to_zero=False)
    assert out['mIoU'] == pytest.approx(100 / 3)  # (1/3 + 2/3 + 0) / 3


def test_miou_list_and_stack_layouts_agree():
    a = miou([SEG_PRED, SEG_PRED[:, :2]], [SEG_GT, SEG_GT[:, :2]], num_classes=4)
    b = miou(np.stack([SEG_PRED, SEG_PRED]), np.stack([SEG_GT, SEG_GT]), num_classes=4)
    assert a['confusion'].sum() == 5 + 4
    assert b['confusion'].sum() == 10
    np.testing.assert_array_equal(b['confusion'], 2 * miou(SEG_PRED, SEG_GT, 4)['confusion'])


def test_human_parts_image_without_people_contributes_nothing():
    stats = SegStats(7)
    stats.update(SEG_PRED, SEG_GT)
    before = stats.confusion.copy()
    no_person = np.full((4, 5), 255)
    stats.update(np.random.default_rng(0).integers(0, 7, (4, 5)), no_person)
    np.testing.assert_array_equal(stats.confusion, before)
    assert stats.num_images == 1


def test_seg_errors():
    with pytest.raises(ValueError, match=r'ground-truth labels must lie in \[0, 2\)'):
        miou(SEG_PRED, SEG_GT, num_classes=2)  # gt has class 2
    with pytest.raises(ValueError, match='predicted labels'):
        miou(np.array([[7]]), np.array([[0]]), num_classes=3)
    with pytest.raises(TypeError, match='integer class labels'):
        miou(np.zeros((2, 2)), np.zeros((2, 2), dtype=np.int64), num_classes=3)
    with pytest.raises(ValueError, match='resize predictions'):
        miou(np.zeros((2, 3), int), np.zeros((2, 2), int), num_classes=3)


def test_seg_state_roundtrip_and_merge():
    a, b = SegStats(4), SegStats(4)
    a.update(SEG_PRED, SEG_GT)
    b.add_state(a.state_dict()).add_state(a.state_dict())
    np.testing.assert_array_equal(b.confusion, 2 * a.confusion)
    c = SegStats(4).merge(a).merge(a)
    np.testing.assert_array_equal(c.confusion, b.confusion)
    with pytest.raises(ValueError, match='4 classes into one with 5'):
        SegStats(5).merge(a)
    assert math.isnan(SegStats(3).compute()['mIoU'])  # nothing annotated -> NaN, not 0


# ----------------------------------------------------------------------------- saliency
SAL_THR = [0.25, 0.5, 0.75]
# A: positives 0.4/0.6/0.8 on gt [0,1,1,1]; B: salient-free gt; C: empty/empty; D: all ignored.
SAL_PRED = [np.array([[0.2, 0.4], [0.6, 0.8]]), np.array([[0.3, 0.3, 0.1, 0.9, 0.99]]),
            np.array([[0.1, 0.2]]), np.array([[0.9, 0.9]])]
SAL_GT = [np.array([[0, 1], [1, 1]]), np.array([[0, 0, 0, 0, 255]]), np.array([[0, 0]]),
          np.array([[255, 255]])]


def test_saliency_image_mean_hand_computed():
    out = saliency_scores(SAL_PRED, SAL_GT, thresholds=SAL_THR)
    pt = out['per_threshold']
    # per image IoU at (0.25, 0.5, 0.75): A (1, 2/3, 1/3), B (0, 0, 0), C (1, 1, 1); D skipped
    np.testing.assert_allclose(pt['iou'], [2 / 3, 5 / 9, 4 / 9])
    np.testing.assert_allclose(pt['precision'], [2 / 3, 2 / 3, 2 / 3])  # B: 0/k = 0
    np.testing.assert_allclose(pt['recall'], [2 / 3, 5 / 9, 4 / 9])  # B: 0/0, pred not empty
    np.testing.assert_allclose(pt['f'], [2 / 3, 20 / 33, 8 / 15])
    assert out['mIoU'] == pytest.approx(200 / 3)
    assert out['maxF'] == pytest.approx(200 / 3)


def test_saliency_astmt_convention_scores_both_empty_precision_recall_zero():
    """ASTMT-lineage code: P = tp / (tp + fp + 1e-12), so image C (both empty) gives P = R = 0."""
    out = saliency_scores(SAL_PRED, SAL_GT, thresholds=SAL_THR, empty_pr=0)
    pt = out['per_threshold']
    np.testing.assert_allclose(pt['iou'], [2 / 3, 5 / 9, 4 / 9])  # IoU keeps 1 for C
    # per image at (0.25, 0.5, 0.75): A P = (1, 1, 1), R = (1, 2/3, 1/3); B (no salient
    # pixel, some predicted) P = R = 0; C (both empty) now P = R = 0; D skipped
    np.testing.assert_allclose(pt['precision'], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(pt['recall'], [1 / 3, 2 / 9, 1 / 9])
    f = [2 * (1 / 3) * r / (1 / 3 + r) for r in (1 / 3, 2 / 9, 1 / 9)]
    np.testing.assert_allclose(pt['f'], f)
    assert out['maxF'] == pytest.approx(100 / 3)
    assert out['mIoU'] == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match='must be 1 or 0'):
        saliency_scores(SAL_PRED, SAL_GT, empty_pr=0.5)


def test_saliency_pixel_pooled_beta_switch():
    out = saliency_scores(SAL_PRED, SAL_GT, thresholds=SAL_THR, pooled_beta2=0.3)
    pt = out['per_threshold']
    # pooled TP/FP/FN: (3,3,0) (2,1,1) (1,1,2)
    np.testing.assert_allclose(pt['pooled_precision'], [0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(pt['pooled_recall'], [1.0, 2 / 3, 1 / 3])
    f = [1.3 * 0.5 / (0.3 * 0.5 + 1), 2 / 3, 1.3 * 0.5 / 3 / (0.15 + 1 / 3)]
    np.testing.assert_allclose(pt['pooled_f_beta'], f)
    assert out['maxF'] == pytest.approx(100 * 2 / 3)  # at τ = 0.5, unlike the β = 1 mean F
    assert out['mIoU'] == pytest.approx(200 / 3)  # mIoU is unaffected by the switch


def test_saliency_values_at_thresholds_are_negative():
    thr = default_saliency_thresholds()
    assert len(thr) == 15 and thr[0] == 0.2 and thr[-1] == 0.9
    # one salient pixel whose probability equals the 6th threshold (0.45): positive for
    # the 5 lower thresholds only (rule: probability > τ).
    out = saliency_scores(np.array([[thr[5]]]), np.array([[1]]))
    np.testing.assert_array_equal(out['per_threshold']['iou'], [1.0] * 5 + [0.0] * 10)
    assert out['mIoU'] == 100.0


def test_saliency_empty_prediction_and_empty_gt_is_perfect():
    out = saliency_scores(np.zeros((3, 3)), np.zeros((3, 3), int))
    pt = out['per_threshold']
    for k in ('iou', 'precision', 'recall', 'f'):
        np.testing.assert_array_equal(pt[k], np.ones(15))
    # nothing predicted on a salient image: precision 0/0 and recall both 0
    out = saliency_scores(np.zeros((3, 3)), np.ones((3, 3), int))
    assert out['mIoU'] == 0 and out['maxF'] == 0


def test_saliency_stack_counts_images_and_errors():
    stats = SaliencyStats()
    stats.update(np.full((2, 2), 0.95), np.ones((2, 2), int))
    assert stats.num_images == 1
    out = saliency_scores(np.stack(SAL_PRED[2:3] * 3), np.stack(SAL_GT[2:3] * 3))
    assert out['mIoU'] == 100.0
    with pytest.raises(ValueError, match='probabilities in'):
        saliency_scores(np.array([[3.2]]), np.array([[1]]))  # a logit, not a probability
    with pytest.raises(ValueError, match='must be 0, 1 or 255'):
        saliency_scores(np.array([[0.5]]), np.array([[2]]))
    with pytest.raises(ValueError, match='different thresholds'):
        SaliencyStats([0.5]).merge(SaliencyStats())


# ----------------------------------------------------------------------------- normals
def _unit(deg):
    r = np.radians(deg)
    return np.array([np.sin(r), 0.0, np.cos(r)])


def test_angular_error_known_vectors():
    g = np.array([0.0, 0.0, 1.0])
    for deg in (0, 30, 45, 90, 120, 180):
        assert angular_error(_unit(deg), g) == pytest.approx(deg, abs=1e-9)
    # normalised first: length does not matter
    assert angular_error(3 * _unit(30), g) == pytest.approx(30, abs=1e-9)


def test_normals_scores_hand_computed():
    # pixels at 0°, 90°, 180°, 20°, plus an invalid (zero) ground truth pixel
    pred = np.stack([_unit(0), _unit(90), _unit(180), _unit(20), _unit(45)])[None]  # (1,5,3)
    gt = np.array([[[0, 0, 1.0]] * 4 + [[0, 0, 0]]])
    out = normals_scores(pred, gt)
    assert out['mErr'] == pytest.approx((0 + 90 + 180 + 20) / 4)
    assert out['rmse'] == pytest.approx(math.sqrt((0 + 90 ** 2 + 180 ** 2 + 20 ** 2) / 4))
    assert out['median'] == pytest.approx((20 + 90) / 2, abs=0.01)
    assert out['<11.25'] == pytest.approx(25.0)
    assert out['<22.5'] == pytest.approx(50.0)
    assert out['<30'] == pytest.approx(50.0)
    # channel-first layout gives the same numbers
    out_cf = normals_scores(np.moveaxis(pred, -1, 0), np.moveaxis(gt, -1, 0), channel_axis=0)
    assert out_cf == pytest.approx(out)


def test_normals_median_odd_count_and_histogram_merge():
    angles = [10.0, 12.34, 70.0]
    pred = np.stack([_unit(a) for a in angles])
    gt = np.tile([0, 0, 1.0], (3, 1))
    s = NormalsStats()
    s.update(pred, gt)
    assert s.median() == pytest.approx(12.34, abs=0.01)
    state = s.state_dict()  # kept per image by MultiTaskMetric: must stay small
    np.testing.assert_allclose(state['hist']['idx'], [1000, 1234, 7000], atol=1)  # 0.01° bins
    assert state['hist']['idx'].dtype == np.uint16 and state['hist']['cnt'].dtype == np.uint16
    t = NormalsStats().add_state(state).merge(s)
    assert t.count == 6 and t.hist.sum() == 6
    assert t.compute()['mErr'] == pytest.approx(np.mean(angles))
    with pytest.raises(ValueError, match='different bin'):
        NormalsStats(bin_width=0.1).merge(s)
    with pytest.raises(ValueError, match='3 channels'):
        s.update(np.zeros((2, 2)), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- depth
def test_depth_scores_hand_computed():
    gt = np.array([[2.0, 4.0, 0.0], [1.0, 2.0, 0.0]])
    pred = np.array([[1.0, 4.0, 9.0], [2.0, 3.0, -1.0]])
    # valid (p, g): (1,2) (4,4) (2,1) (3,2); the two gt = 0 pixels are ignored
    out = depth_scores(pred, gt)
    assert out['rmse'] == pytest.approx(math.sqrt(3 / 4))
    ln2, ln15 = math.log(2), math.log(1.5)
    assert out['log_rmse'] == pytest.approx(math.sqrt((2 * ln2 ** 2 + ln15 ** 2) / 4))
    assert out['abs_rel'] == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    # ratios 2, 1, 2, 1.5 against 1.25, 1.5625, 1.953125
    assert (out['delta1'], out['delta2'], out['delta3']) == pytest.approx((25, 50, 50))


def test_depth_nonpositive_prediction_is_clamped_for_logs():
    out = depth_scores(np.array([0.0, -2.0]), np.array([1.0, 1.0]))
    assert out['rmse'] == pytest.approx(math.sqrt((1 + 9) / 2))  # raw predictions
    assert out['log_rmse'] == pytest.approx(abs(math.log(1e-3)))  # clamped to 1e-3
    assert out['delta3'] == 0.0
    with pytest.raises(ValueError, match='NaN'):
        depth_scores(np.array([np.nan]), np.array([1.0]))
    s = DepthStats()
    s.update(np.ones(3), np.zeros(3))
    assert s.count == 0 and math.isnan(s.compute()['rmse'])


# ----------------------------------------------------------------------------- Δm
def test_delta_m_by_hand():
    res = {'semseg': 70.0, 'normals': 17.0}
    base = {'semseg': 67.21, 'normals': 17.97}
    expected = ((70 - 67.21) / 67.21 + (17.97 - 17) / 17.97) / 2 * 100
    assert delta_m(res, base, {'semseg': True, 'normals': False}) == pytest.approx(expected)
    assert delta_m(res, base) == pytest.approx(expected)  # directions from mtdense.tasks
    gains = relative_gains({'depth': 0.5}, {'depth': 0.4})
    assert gains['depth'] == pytest.approx(-25.0)
    assert delta_m(base, base) == 0.0
    with pytest.raises(KeyError, match="no baseline for task 'depth'"):
        delta_m({'depth': 1.0}, base)
    with pytest.raises(ValueError, match='non-zero'):
        delta_m({'depth': 1.0}, {'depth': 0.0})
    with pytest.raises(KeyError, match='higher_is_better'):
        delta_m(res, base, {'semseg': True})


def test_torch_tensors_including_bfloat16_are_accepted():
    import torch
    p = torch.tensor([[0.3, 0.8]], dtype=torch.bfloat16)
    out = saliency_scores(p, torch.tensor([[0, 1]]))
    ref = saliency_scores(p.float().numpy(), np.array([[0, 1]]))
    assert out['mIoU'] == ref['mIoU'] == 100.0
