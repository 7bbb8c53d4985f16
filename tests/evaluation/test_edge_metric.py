"""Edge-detection metric (odsF / oisF / AP) on hand-made cases (docs/evaluation.md)."""
import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage.morphology import thin as sk_thin

from mtdense.evaluation.functional import (EdgeStats, average_precision,
                                           default_edge_thresholds, edge_image_counts,
                                           edge_match_count, edge_scores, thin_mask)
from mtdense.evaluation.functional.edge import _deletable, match_radius


# ----------------------------------------------------------------------------- thinning
def _guo_hall_table(first: bool) -> np.ndarray:
    """Deletion decision per 8-neighbour code, written pixel by pixel from Guo & Hall
    (1989), bit k-1 of the code = x_k (x1 = E, then counter-clockwise)."""
    out = np.zeros(256, bool)
    for code in range(256):
        x = [None] + [(code >> (k - 1)) & 1 for k in range(1, 9)]
        x.append(x[1])  # x9 = x1
        xh = sum(1 for i in range(1, 5) if not x[2 * i - 1] and (x[2 * i] or x[2 * i + 1]))
        n1 = sum(1 for k in range(1, 5) if x[2 * k - 1] or x[2 * k])
        n2 = sum(1 for k in range(1, 5) if x[2 * k] or x[2 * k + 1])
        if first:
            g3 = not ((x[2] or x[3] or not x[8]) and x[1])
        else:
            g3 = not ((x[6] or x[7] or not x[4]) and x[5])
        out[code] = xh == 1 and 2 <= min(n1, n2) <= 3 and g3
    return out


@pytest.mark.parametrize('first', [True, False])
def test_bit_sliced_deletion_rule_matches_guo_hall_on_all_256_neighbourhoods(first):
    codes = np.arange(256, dtype=np.uint64)
    planes = [(codes >> np.uint64(k)) & np.uint64(1) for k in range(8)]
    got = _deletable(*planes, first=first) & np.uint64(1)
    np.testing.assert_array_equal(got.astype(bool), _guo_hall_table(first))


def test_thin_mask_equals_skimage_thin():
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 70), (70, 1), (5, 63), (6, 64), (7, 65), (40, 128), (33, 129),
              (64, 200)]
    for i in range(120):
        h, w = shapes[i % len(shapes)]
        kind = i % 3
        if kind == 0:  # blobs of every thickness
            m = ndi.gaussian_filter(rng.random((h, w)), rng.uniform(0, 3)) > rng.uniform(.3, .7)
        elif kind == 1:  # salt and pepper
            m = rng.random((h, w)) < rng.uniform(0.1, 0.95)
        else:  # thick lines touching the border
            m = np.zeros((h, w), bool)
            m[:, rng.integers(0, w):][:, :rng.integers(1, 6)] = True
            m[rng.integers(0, h):][:rng.integers(1, 6)] = True
        np.testing.assert_array_equal(thin_mask(m), sk_thin(m), err_msg=f'case {i} {h}x{w}')
    for m in (np.zeros((9, 70), bool), np.ones((9, 70), bool)):
        np.testing.assert_array_equal(thin_mask(m), sk_thin(m))
    with pytest.raises(ValueError, match='2-D'):
        thin_mask(np.zeros((2, 2, 2), bool))


# ----------------------------------------------------------------------------- matching
def _bsds_min_cost_count(pred, gt, radius, outlier_cost):
    """Matches of the BSDS correspondence: a min-cost perfect assignment in which each
    pixel is paired with a pixel of the other map within ``radius`` (cost = distance)
    or with its own outlier (cost ``outlier_cost``); outliers pair freely (cost 0)."""
    py, px = np.nonzero(pred)
    gy, gx = np.nonzero(gt)
    n1, n2 = py.size, gy.size
    big = 1e12  # forbidden pairs
    d = np.hypot(py[:, None] - gy[None], px[:, None] - gx[None])
    cost = np.full((n1 + n2, n2 + n1), big)
    cost[:n1, :n2] = np.where(d <= radius, d, big)
    cost[np.arange(n1), n2 + np.arange(n1)] = outlier_cost
    cost[n1 + np.arange(n2), np.arange(n2)] = outlier_cost
    cost[n1:, n2:] = 0.0
    rows, cols = linear_sum_assignment(cost)
    return int(((rows < n1) & (cols < n2)).sum())


def test_maximum_matching_equals_bsds_min_cost_assignment_on_random_cases():
    rng = np.random.default_rng(1)
    for i in range(150):
        h, w = rng.integers(2, 14, 2)
        pred = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        gt = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        r = float(rng.uniform(0.5, 3.0))
        # BSDS outlier cost 100·r: counts agree whenever min(#pred, #gt) < 200 (docs)
        assert edge_match_count(pred, gt, r) == _bsds_min_cost_count(pred, gt, r, 100 * r), i
    # a greedy nearest-pixel pairing is not enough: (0,1)-(0,0) first would block (0,2)
    pred, gt = np.zeros((1, 4), bool), np.zeros((1, 4), bool)
    pred[0, [1, 3]] = True
    gt[0, [0, 2]] = True
    assert edge_match_count(pred, gt, 1.0) == 2
    assert edge_match_count(pred, gt, 0.99) == 0  # pairs at distance exactly 1: inclusive


def test_bsds_finite_outlier_cost_drops_one_match_on_a_chain_of_200_pairs():
    """The documented limit of the equivalence: GT x = 0..249, prediction x = 1..250, r = 1.
    BSDS keeps the 249 co-located pairs (cost 0 + 2 outliers × 100) rather than shifting
    all 250 pairs by one pixel (cost 250); the maximum matching (= outlier cost -> inf)
    has 250."""
    n = 250
    gt = np.zeros((1, n + 1), bool)
    gt[0, :n] = True
    pred = np.zeros((1, n + 1), bool)
    pred[0, 1:] = True
    assert edge_match_count(pred, gt, 1.0) == n
    assert _bsds_min_cost_count(pred, gt, 1.0, 100.0) == n - 1
    assert _bsds_min_cost_count(pred, gt, 1.0, 1000.0) == n


# ----------------------------------------------------------------------------- counts
def _line(shape, row=None, col=None, span=(5, 25), value=1.0):
    a = np.zeros(shape)
    if row is not None:
        a[row, span[0]:span[1]] = value
    else:
        a[span[0]:span[1], col] = value
    return a


def test_shifted_line_within_and_beyond_the_tolerance():
    shape = (40, 30)  # diagonal 50: max_dist 0.04 -> 2 pixels
    assert match_radius(shape, 0.04) == pytest.approx(2.0)
    gt = _line(shape, col=10).astype(np.uint8)  # 20 pixels
    for shift, matched in ((0, 20), (1, 20), (2, 20), (3, 0), (-3, 0)):
        c = edge_image_counts(_line(shape, col=10 + shift, value=0.7), gt, max_dist=0.04)
        np.testing.assert_array_equal(c[:70], [[matched, 20, matched, 20]] * 70, err_msg=shift)
        np.testing.assert_array_equal(c[70:], [[0, 0, 0, 20]] * 29)  # 0.7 < τ: nothing
    diag = np.zeros(shape)
    diag[6:26, 11] = 0.7  # shifted by (1, 1): distance √2 <= 2
    assert edge_image_counts(diag, gt, max_dist=0.04)[0].tolist() == [20, 20, 20, 20]


def test_doubled_boundaries_count_one_to_one():
    shape = (12, 8)
    thick = np.zeros(shape)
    thick[1:11, 3:5] = 1.0  # a 2-pixel-wide band of 10 rows
    one = np.zeros(shape)
    one[1:11, 3] = 1.0
    # doubled GT, one-pixel prediction: each GT pixel is matched at most once -> R = 1/2
    # (a dilation shortcut would give R = 1)
    c = edge_image_counts(one, thick.astype(np.uint8), max_dist=0.1)
    assert c[0].tolist() == [10, 10, 10, 20]
    # doubled prediction: thinned first, to 9 pixels (Guo-Hall removes one end pixel of a
    # 2-wide band), all matched -> P = 1; unthinned it would be P = 10/20
    assert int(sk_thin(thick > 0).sum()) == 9
    c = edge_image_counts(thick, one.astype(np.uint8), max_dist=0.1)
    assert c[0].tolist() == [9, 9, 9, 10]


def test_thresholds_are_inclusive_and_empty_cases():
    shape = (20, 20)
    gt = _line(shape, row=5, span=(2, 12)).astype(np.uint8)
    pred = _line(shape, row=5, span=(2, 12), value=0.5)
    c = edge_image_counts(pred, gt)
    thr = default_edge_thresholds()
    assert thr.size == 99 and thr[0] == 0.01 and thr[49] == 0.5 and thr[-1] == 0.99
    assert c[49].tolist() == [10, 10, 10, 10] and c[50].tolist() == [0, 0, 0, 10]  # p >= τ
    # empty prediction on an image with edges: P = R = F = 0 everywhere
    out = edge_scores(np.zeros(shape), gt)
    assert (out['odsF'], out['oisF'], out['AP']) == (0.0, 0.0, 0.0)
    # empty GT: predictions are false positives; alone the split has no GT -> NaN
    c = edge_image_counts(pred, np.zeros(shape, np.uint8))
    assert c[0].tolist() == [0, 10, 0, 0]
    out = edge_scores(pred, np.zeros(shape, np.uint8))
    assert all(math.isnan(out[k]) for k in ('odsF', 'oisF', 'AP'))
    # both empty: zero counts; the image is recorded but changes no score
    s = EdgeStats().update(np.zeros(shape), np.zeros(shape, np.uint8))
    assert s.num_images == 1 and not s.counts.any()
    alone = edge_scores(pred, gt)
    both = edge_scores([pred, np.zeros(shape)], [gt, np.zeros(shape, np.uint8)])
    assert both['odsF'] == alone['odsF'] == 100.0 and both['oisF'] == alone['oisF']
    assert both['AP'] == alone['AP']


def test_ignored_pixels_are_outside_the_image():
    shape = (40, 40)
    gt = np.zeros(shape, np.uint8)
    gt[5, 5:15] = 1
    gt[:, 20:] = 255  # e.g. padding
    pred = np.zeros(shape)
    pred[5, 5:15] = 0.9
    pred[28:31, 10:35] = 0.9  # a 3-wide band running into the ignored part
    pred[10:12, 22:38] = 0.9  # a 2-wide band inside it
    c = edge_image_counts(pred, gt, max_dist=0.05)
    # the band is cut at column 20 before thinning: its skeleton lies in columns 10..19
    cut = np.zeros(shape, bool)
    cut[28:31, 10:20] = True
    n_band = int(sk_thin(cut).sum())
    assert 0 < n_band <= 10
    assert c[0].tolist() == [10, 10 + n_band, 10, 10]
    # all pixels ignored: nothing recorded
    s = EdgeStats().update(pred, np.full(shape, 255, np.uint8))
    assert s.num_images == 0 and math.isnan(s.compute()['odsF'])


# ----------------------------------------------------------------------------- scores
def _ods_ois_case():
    """A: its line at 0.9 plus 10 isolated false positives at 0.5; B: its line at 0.3.

    τ <= .30: A (10 of 20 predicted matched) + B (10 of 10): P = 20/30, R = 1, F = .8
    .30 < τ <= .50: A only: P = 10/20, R = 10/20, F = .5
    .50 < τ <= .90: A's line only: P = 1, R = 10/20, F = 2/3;  τ > .9: P = R = 0
    """
    shape = (40, 40)  # diagonal 56.6, max_dist 0.05 -> 2.83 pixels
    gt_a = _line(shape, row=5, span=(5, 15)).astype(np.uint8)
    pred_a = _line(shape, row=5, span=(5, 15), value=0.9)
    pred_a[30, 5:35:3] = 0.5  # 10 isolated pixels far from the GT line
    gt_b = _line(shape, row=20, span=(5, 15)).astype(np.uint8)
    pred_b = _line(shape, row=20, span=(5, 15), value=0.3)
    return [pred_a, pred_b], [gt_a, gt_b]


def test_ods_ois_and_ap_hand_computed():
    preds, gts = _ods_ois_case()
    out = edge_scores(preds, gts, max_dist=0.05)
    pt = out['per_threshold']
    f = np.array([0.8] * 30 + [0.5] * 20 + [2 / 3] * 40 + [0.0] * 9)
    np.testing.assert_allclose(pt['f'], f)
    np.testing.assert_allclose(pt['precision'], [2 / 3] * 30 + [0.5] * 20 + [1] * 40 + [0] * 9)
    np.testing.assert_allclose(pt['recall'], [1.0] * 30 + [0.5] * 60 + [0] * 9)
    assert out['odsF'] == pytest.approx(80.0)
    assert out['ods_threshold'] == 0.01  # the first of the tied best thresholds
    # OIS: A at τ in (.5, .9], B at τ <= .3: 20 of 20 matched on both sides -> F = 1
    assert out['oisF'] == pytest.approx(100.0)
    # PR points (R, P): (1, 2/3), (.5, .5), (.5, 1), (0, 0); at R = .5 the higher P counts:
    # area = (0 + 1) / 2 × .5 + (1 + 2/3) / 2 × .5 = 2/3
    assert out['AP'] == pytest.approx(200 / 3)
    s = EdgeStats(0.05)
    for p, g in zip(preds, gts):
        s.update(p, g)
    assert s.best_thresholds().tolist() == [89, 29]  # ties -> the highest τ


def test_ois_ties_prefer_fewest_predictions():
    """An image without GT edges scores F = 0 at every τ that predicts something; OIS
    then takes its τ with the fewest predicted pixels (here 0.99: 1 pixel), not 0.01."""
    preds, gts = _ods_ois_case()
    noise = np.zeros((40, 40))
    noise[10:30:2, 10:30:2] = 0.2
    noise[35, 35] = 1.0
    s = EdgeStats(0.05)
    for p, g in zip(preds + [noise], gts + [np.zeros((40, 40), np.uint8)]):
        s.update(p, g)
    assert s.best_thresholds().tolist() == [89, 29, 98]
    assert s.compute()['oisF'] == pytest.approx(100 * 2 * (20 / 21) / (20 / 21 + 1))


def test_average_precision_interpolation():
    assert average_precision([0.2, 1.0], [1.0, 1.0]) == pytest.approx(0.8)  # no extrapolation
    assert average_precision([1.0, 0.0, 0.5], [0.5, 1.0, 1.0]) == pytest.approx(
        0.5 + 0.75 * 0.5)  # order-free: sorted by recall
    assert average_precision([0.3, 0.3], [0.1, 0.9]) == 0.0  # one distinct recall
    assert average_precision([0, 0.5, 0.5, 1], [1, 0.2, 0.6, 0.6]) == pytest.approx(
        (1 + 0.6) / 4 + 0.6 / 2)


# ----------------------------------------------------------------------------- state / DDP
def _rendered_cases(n=4, h=48, w=64):
    from mtdense.datasets.synthetic import SyntheticSceneGenerator
    from mtdense.datasets.synthetic.release_layouts import label_boundaries
    gen = SyntheticSceneGenerator(h, w, seed=3)
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for i in range(n):
        gt = label_boundaries(gen(i)['semseg']).astype(np.uint8)
        d = ndi.distance_transform_edt(gt == 0)
        p = 0.9 * np.exp(-d / 2.0) + 0.1 * ndi.gaussian_filter(rng.random(gt.shape), 1.5)
        preds.append(np.clip(p + 0.05 * rng.standard_normal(gt.shape), 0, 1))
        gts.append(gt)
    gts[1][:8] = 255  # an ignored stripe
    return preds, gts


def test_counts_equal_a_skimage_and_min_cost_reference_on_rendered_scenes():
    preds, gts = _rendered_cases(2)
    thr = default_edge_thresholds()
    for p, g in zip(preds, gts):
        c = edge_image_counts(p, g, max_dist=0.02)
        r = match_radius(g.shape, 0.02)
        valid = g != 255
        for k in (0, 9, 29, 59, 89):
            skel = sk_thin((p >= thr[k]) & valid)
            n_gt = int((g == 1).sum())
            m = _bsds_min_cost_count(skel, g == 1, r, 10.0 * r * (n_gt + skel.sum()))
            assert c[k].tolist() == [m, int(skel.sum()), m, n_gt], k


def test_state_roundtrip_merge_and_ddp_split_are_exact():
    preds, gts = _rendered_cases(4)
    one = EdgeStats(0.02)
    for p, g in zip(preds, gts):
        one.update(p, g)
    rank0, rank1 = EdgeStats(0.02), EdgeStats(0.02)
    for p, g in zip(preds[:3], gts[:3]):
        rank0.update(p, g)
    rank1.update(preds[3], gts[3])
    gathered = EdgeStats(0.02).add_state(rank0.state_dict()).add_state(rank1.state_dict())
    np.testing.assert_array_equal(gathered.counts, one.counts)
    assert gathered.compute() == one.compute()
    other_order = EdgeStats(0.02).merge(rank1).merge(rank0)
    assert other_order.compute() == one.compute()
    np.testing.assert_array_equal(other_order.counts.sum(0), one.counts.sum(0))
    state = one.state_dict()
    assert state['counts'].dtype == np.uint16 and state['counts'].shape == (4, 99, 4)
    # per-image records, as MultiTaskMetric keeps them, sum to the same scores
    per_image = [EdgeStats(0.02).update(p, g).state_dict() for p, g in zip(preds, gts)]
    rebuilt = EdgeStats(0.02)
    for st in per_image:
        rebuilt.add_state(st)
    assert rebuilt.compute() == one.compute()
    # (1, H, W) maps, as MultiTaskMetric passes PixelData, are the same images
    chw = EdgeStats(0.02)
    for p, g in zip(preds, gts):
        chw.update(p[None], g[None])
    np.testing.assert_array_equal(chw.counts, one.counts)
    res = one.compute()
    assert all(0 < res[k] < 100 for k in ('odsF', 'oisF', 'AP')), res


def test_state_and_input_errors():
    s = EdgeStats()
    with pytest.raises(ValueError, match='different thresholds'):
        s.merge(EdgeStats(thresholds=[0.5]))
    with pytest.raises(ValueError, match='max_dist 0.011'):
        s.merge(EdgeStats(0.011))
    with pytest.raises(KeyError, match='missing keys'):
        s.add_state({'thresholds': s.thresholds})
    bad = EdgeStats().state_dict()
    bad['counts'] = np.zeros((1, 98, 4), np.uint16)
    with pytest.raises(ValueError, match=r'shape \(n, 99, 4\)'):
        s.add_state(bad)
    bad['counts'] = np.array([[[3, 2, 0, 0]] * 99], np.uint16)
    with pytest.raises(ValueError, match='inconsistent'):
        s.add_state(bad)
    big = EdgeStats().add_state({'thresholds': s.thresholds, 'max_dist': 0.0075,
                                 'counts': np.array([[[70000, 70000, 0, 1]] * 99])})
    assert big.state_dict()['counts'].dtype == np.uint32
    with pytest.raises(ValueError, match='probabilities in'):
        edge_scores(np.full((4, 4), 3.0), np.zeros((4, 4), np.uint8))  # a logit
    with pytest.raises(ValueError, match='must be 0, 1 or 255'):
        edge_scores(np.zeros((4, 4)), np.full((4, 4), 2, np.uint8))
    with pytest.raises(ValueError, match='resize predictions'):
        edge_scores(np.zeros((4, 5)), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=r'\(H, W\) or \(1, H, W\)'):
        EdgeStats().update(np.zeros((2, 4, 4)), np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match='max_dist'):
        EdgeStats(max_dist=4.7)  # pixels, not a fraction of the diagonal
    with pytest.raises(ValueError, match='strictly increasing'):
        EdgeStats(thresholds=[0.5, 0.4])
