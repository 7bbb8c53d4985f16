"""Edge ground truth: PASCAL LabelMap and NYUD .npy decoders, synthetic scene edges."""
import re

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.io import savemat
from skimage.morphology import thin

from mtdense.datasets import DECODERS, DataFileError, decode
from mtdense.datasets.synthetic import SyntheticSceneGenerator
from mtdense.datasets.synthetic.classes import CLASS_ID
from mtdense.datasets.synthetic.edges import DEPTH_JUMP, boundary_pixels, synthetic_edges
from mtdense.datasets.synthetic.release_layouts import write_labelmap_mat


def test_edge_decoders_are_registered():
    assert {'edge_labelmap_mat', 'edge_npy'} <= set(DECODERS)


# ----------------------------------------------------------------------------- PASCAL
def _labelmap_edges(tmp_path, labels, name='lm.mat'):
    path = str(tmp_path / name)
    write_labelmap_mat(path, np.asarray(labels))
    return decode('edge_labelmap_mat', path)


def test_square_region_gives_its_thinned_one_pixel_outline(tmp_path):
    lm = np.zeros((12, 12), np.uint16)
    lm[3:8, 3:8] = 5
    out = _labelmap_edges(tmp_path, lm)
    assert out.dtype == np.uint8 and out.shape == (12, 12) and set(np.unique(out)) == {0, 1}
    # |Laplacian| > 0 on both sides: the square's own border ring (corners included) and
    # the outside pixels 4-adjacent to it (the diagonal corners outside are not)
    band = np.zeros((12, 12), bool)
    band[3:8, 3:8] = True
    band[4:7, 4:7] = False
    band[2, 3:8] = band[8, 3:8] = band[3:8, 2] = band[3:8, 8] = True
    np.testing.assert_array_equal(out, thin(band))
    edge = out.astype(bool)
    assert not (edge & ~band).any() and np.array_equal(thin(edge), edge)  # one pixel wide
    # a closed outline: inside and outside are not 4-connected through non-edge pixels
    comp, _ = ndi.label(~edge)
    assert comp[5, 5] != comp[0, 0]


def test_straight_boundary_and_the_laplacian_definition(tmp_path):
    lm = np.ones((8, 10), np.uint16)
    lm[:, 5:] = 2  # vertical boundary between columns 4 and 5
    out = _labelmap_edges(tmp_path, lm)
    # both sides are marked; thinning leaves one pixel per row (Guo-Hall may drop an end
    # pixel of the 2-wide band), nothing at the image border
    band = np.zeros((8, 10), bool)
    band[:, 4:6] = True
    np.testing.assert_array_equal(out, thin(band))
    assert out[:, 4:6].sum(1).max() == 1 and out.sum() >= 7 and out[:, 4:6].sum() == out.sum()
    assert not _labelmap_edges(tmp_path, np.full((6, 7), 9), 'const.mat').any()
    # a 1-pixel stripe of label 2 between labels 1 and 3: its Laplacian 1 + 3 + 2 + 2 - 8
    # is 0, so by the definition it is no edge; its neighbours on both sides are
    lm = np.ones((6, 9), np.uint16)
    lm[:, 4] = 2
    lm[:, 5:] = 3
    out = _labelmap_edges(tmp_path, lm, 'stripe.mat')
    assert out[:, 3].all() and out[:, 5].all() and out.sum() == 12
    # the 4-neighbour kernel: a one-pixel region marks itself and its 4 neighbours (a plus,
    # which thins to 2 pixels); the 8-neighbour kernel (ksize=3) would mark the diagonals
    lm = np.zeros((7, 7), np.uint16)
    lm[3, 3] = 5
    plus = np.zeros((7, 7), bool)
    plus[2:5, 3] = plus[3, 2:5] = True
    out = _labelmap_edges(tmp_path, lm, 'dot.mat')
    np.testing.assert_array_equal(out, thin(plus))
    assert out.sum() == 2 and not out[[2, 2, 4, 4], [2, 4, 2, 4]].any()


def test_labelmap_errors_name_the_file(tmp_path):
    missing = str(tmp_path / 'nope.mat')
    with pytest.raises(DataFileError, match=re.escape(missing)):
        decode('edge_labelmap_mat', missing)
    cases = {'novar.mat': {'Other': np.zeros((3, 3))},
             'cube.mat': {'LabelMap': np.zeros((3, 3, 2))},
             'frac.mat': {'LabelMap': np.full((3, 3), 1.5)},
             'nan.mat': {'LabelMap': np.full((3, 3), np.nan)},
             'neg.mat': {'LabelMap': -np.ones((3, 3))}}
    messages = {'novar.mat': 'no "LabelMap"', 'cube.mat': r'\(H, W\)',
                'frac.mat': 'integer class ids', 'nan.mat': 'NaN', 'neg.mat': 'negative'}
    for name, content in cases.items():
        path = str(tmp_path / name)
        savemat(path, content)
        with pytest.raises(DataFileError, match=re.escape(path) + '.*' + messages[name]):
            decode('edge_labelmap_mat', path)
    garbage = tmp_path / 'garbage.mat'
    garbage.write_bytes(b'not a mat file' * 20)
    with pytest.raises(DataFileError, match=re.escape(str(garbage))):
        decode('edge_labelmap_mat', str(garbage))


# ----------------------------------------------------------------------------- NYUD
def test_edge_npy_values(tmp_path):
    arr = np.array([[0.0, 0.3, 0.5], [0.7, 1.0, 0.0]], np.float32)
    np.save(tmp_path / 'e.npy', arr)
    out = decode('edge_npy', str(tmp_path / 'e.npy'))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 0]])  # > 0.5, strictly
    for stored in (arr > 0.5, (arr > 0.5).astype(np.uint8), (arr > 0.5).astype(np.int64)):
        np.save(tmp_path / 'b.npy', stored)
        np.testing.assert_array_equal(decode('edge_npy', str(tmp_path / 'b.npy')), out)


@pytest.mark.parametrize('name,arr,message', [
    ('two.npy', np.array([[0.0, 2.0]]), r'values in \[0.0, 2.0\], outside \[0, 1\]'),
    ('u8.npy', np.array([[0, 255]], np.uint8), r'outside \[0, 1\]'),
    ('neg.npy', np.array([[-0.5, 1.0]]), r'outside \[0, 1\]'),
    ('nan.npy', np.array([[np.nan, 1.0]]), '1 NaN/inf'),
    ('inf.npy', np.array([[np.inf, 0.0]]), '1 NaN/inf'),
    ('hw1.npy', np.zeros((4, 5, 1)), r'\(H, W\) array, got shape \(4, 5, 1\)'),
    ('flat.npy', np.zeros(5), r'got shape \(5,\)'),
    ('empty.npy', np.zeros((0, 5)), 'non-empty'),
    ('complex.npy', np.zeros((2, 2), complex), 'dtype complex'),
    ('text.npy', np.array([['a', 'b']]), 'dtype <U1'),
])
def test_edge_npy_errors_name_the_file(tmp_path, name, arr, message):
    path = str(tmp_path / name)
    np.save(path, arr)
    with pytest.raises(DataFileError, match=re.escape(path) + '.*' + message):
        decode('edge_npy', path)


def test_edge_npy_unreadable_files(tmp_path):
    obj = str(tmp_path / 'obj.npy')
    np.save(obj, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    garbage = tmp_path / 'garbage.npy'
    garbage.write_bytes(b'\x00\x01 not numpy' * 10)
    for path in (obj, str(garbage), str(tmp_path / 'missing.npy')):
        with pytest.raises(DataFileError, match=re.escape(path)):
            decode('edge_npy', path)
    with pytest.raises(DataFileError, match='no file given'):
        decode('edge_npy', None)


# ----------------------------------------------------------------------------- synthetic
def _hand_sample(semseg, depth, parts=None):
    parts = np.full(semseg.shape, 255, np.uint8) if parts is None else parts
    return dict(semseg=np.asarray(semseg, np.uint8), human_parts=np.asarray(parts, np.uint8),
                depth=np.asarray(depth, np.float32))


def test_synthetic_edges_hand_made_scene():
    wall, box = CLASS_ID['wall'], CLASS_ID['box']
    semseg = np.full((16, 16), wall)
    depth = np.full((16, 16), 5.0)
    semseg[4:10, 4:10] = box
    depth[4:10, 4:10] = 2.0
    e = synthetic_edges(_hand_sample(semseg, depth))
    assert e.dtype == np.uint8
    # the nearer side: the box's own border ring, thinned (its corner pixels go)
    ring = np.zeros((16, 16), bool)
    ring[4:10, 4:10] = True
    ring[5:9, 5:9] = False
    np.testing.assert_array_equal(e, thin(ring))
    assert e[4:10, 4:10].sum() == e.sum() == 16  # 20 ring pixels less the 4 corners
    # the box behind the wall instead: the edge moves to the wall side
    e_behind = synthetic_edges(_hand_sample(semseg, np.where(semseg == box, 9.0, 5.0)))
    assert e_behind[4:10, 4:10].sum() == 0 and e_behind.sum() > 0


def test_synthetic_occlusion_within_a_class_parts_and_no_hit():
    box = CLASS_ID['box']
    semseg = np.full((10, 12), box)
    depth = np.full((10, 12), 3.0)
    depth[:, 6:] = 2.0  # a nearer box on the right: same class, relative jump 0.5
    e = synthetic_edges(_hand_sample(semseg, depth))
    assert e[:, 6].all() and e.sum() == 10  # on the near (right) side of the jump
    depth[:, 6:] = 3.0 / (1 + 0.9 * DEPTH_JUMP)  # a jump below the threshold: a slope
    assert not synthetic_edges(_hand_sample(semseg, depth)).any()
    # person parts at one depth: head rows 0..3 above torso rows 4..9 -> the head's last row
    person = np.full((10, 12), CLASS_ID['person'])
    parts = np.full((10, 12), 2)
    parts[:4] = 1
    e = synthetic_edges(_hand_sample(person, np.full((10, 12), 2.0), parts))
    assert e[3].all() and e.sum() == 12
    # the same map with no person annotation (all 255): no part edges
    assert not synthetic_edges(_hand_sample(person, np.full((10, 12), 2.0))).any()
    # rays that hit nothing (255, depth 0) are infinitely far: the edge is on the wall
    semseg = np.full((8, 8), CLASS_ID['wall'])
    semseg[:, :3] = 255
    depth = np.where(semseg == 255, 0.0, 4.0)
    e = synthetic_edges(_hand_sample(semseg, depth))
    assert e[:, 3].all() and e.sum() == 8


@pytest.fixture(scope='module')
def rendered():
    gen = SyntheticSceneGenerator(48, 64, seed=0)
    return gen, [gen(i) for i in range(10)]


def _boundary_partner(s, depth_jump=DEPTH_JUMP):
    """(H, W) bool: the pixel has a 4-neighbour across a boundary and is not the farther
    of the two (the definition, pixel pair by pixel pair)."""
    sem, parts = s['semseg'].astype(int), s['human_parts'].astype(int)
    z = np.where(s['depth'] > 0, s['depth'], np.inf).astype(np.float64)
    has_parts = (parts != 255).any()
    h, w = sem.shape
    ok = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                v, u = y + dy, x + dx
                if not (0 <= v < h and 0 <= u < w):
                    continue
                jump = (np.isfinite(z[y, x]) and np.isfinite(z[v, u])
                        and abs(z[y, x] - z[v, u]) > depth_jump * min(z[y, x], z[v, u]))
                differs = sem[y, x] != sem[v, u] or jump or (
                    has_parts and parts[y, x] != parts[v, u])
                if differs and z[y, x] <= z[v, u]:
                    ok[y, x] = True
    return ok


def test_synthetic_edges_on_rendered_samples(rendered):
    gen, samples = rendered
    for i, s in enumerate(samples):
        e = synthetic_edges(s)
        edge = e.astype(bool)
        assert e.dtype == np.uint8 and e.shape == s['semseg'].shape and edge.any(), i
        assert np.array_equal(thin(edge), edge), i  # one pixel wide: thinning's fixed point
        # every edge pixel is the near side of a label / part / depth boundary
        assert not (edge & ~_boundary_partner(s)).any(), i
        # and every label boundary has an edge pixel next to it (thinning moves little)
        marks = boundary_pixels(s['semseg'], s['human_parts'], s['depth'])
        label_change = np.zeros_like(marks)
        label_change[:, :-1] |= s['semseg'][:, :-1] != s['semseg'][:, 1:]
        label_change[:-1] |= s['semseg'][:-1] != s['semseg'][1:]
        dist = ndi.distance_transform_edt(~edge)
        assert dist[label_change & marks].max() <= 2.5, i
        assert (dist[marks] <= 1.5).mean() >= 0.995, i
        # deterministic: the same sample again gives the same edges
        np.testing.assert_array_equal(synthetic_edges(gen(i)), e)
    with pytest.raises(KeyError, match="no 'depth'"):
        synthetic_edges({'semseg': samples[0]['semseg'], 'human_parts': samples[0]['semseg']})
    with pytest.raises(ValueError, match='depth_jump'):
        synthetic_edges(samples[0], depth_jump=0)
