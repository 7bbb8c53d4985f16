"""Tests of the procedural synthetic scene generator (mtdense.datasets.synthetic)."""
import json
import math
import os

import cv2
import numpy as np
import pytest

from mtdense.datasets.synthetic import (CLASSES, LAYOUT_DIRS, SALIENT_CLASSES, Box, CameraPose,
                                        Capsule, Cylinder, Ellipsoid, PinholeCamera, Quad, Scene,
                                        Sphere, SyntheticDatasetWriter, SyntheticRenderer,
                                        SyntheticSceneGenerator, make_person, sample_material)
from mtdense.datasets.synthetic.camera import rot_x, rot_y
from mtdense.datasets.synthetic.classes import CLASS_ID

MAPS = ('img', 'semseg', 'human_parts', 'saliency', 'normals', 'depth')
H, W = 48, 64


@pytest.fixture(scope='module')
def samples():
    gen = SyntheticSceneGenerator(H, W, seed=0)
    return gen, [gen(i) for i in range(10)]


def _scene(camera, pose, prims):
    r_cw = pose.world_to_cam
    t_cw = -r_cw @ np.asarray(pose.position, dtype=np.float64)
    return Scene(camera=camera, pose=pose, primitives=[p.moved(r_cw, t_cw) for p in prims],
                 light_dir=np.array([0.0, 1.0, 0.0]), ambient=0.4,
                 background=np.zeros(3))


def test_deterministic_per_seed_and_index(samples):
    gen, ref = samples
    again = SyntheticSceneGenerator(H, W, seed=0)
    # Out of order and alone: sample i depends only on (seed, i).
    for i in (7, 2):
        out = again(i)
        for k in MAPS:
            np.testing.assert_array_equal(out[k], ref[i][k], err_msg=k)
    other = SyntheticSceneGenerator(H, W, seed=1)(2)
    assert not np.array_equal(other['img'], ref[2]['img'])
    assert not np.array_equal(other['depth'], ref[2]['depth'])
    assert not np.array_equal(ref[3]['depth'], ref[2]['depth'])


def test_output_types_and_label_rules(samples):
    gen, outs = samples
    rays = gen.camera.ray_grid()
    salient_ids = [CLASS_ID[c] for c in SALIENT_CLASSES]
    with_person = 0
    for out in outs:
        assert out['img'].dtype == np.uint8 and out['img'].shape == (H, W, 3)
        assert out['normals'].dtype == np.float32 and out['normals'].shape == (H, W, 3)
        assert out['depth'].dtype == np.float32 and out['depth'].shape == (H, W)
        for k in ('semseg', 'human_parts', 'saliency'):
            assert out[k].dtype == np.uint8 and out[k].shape == (H, W)
        sem, depth, normals = out['semseg'], out['depth'], out['normals']
        valid = sem != 255
        assert set(np.unique(sem[valid])) <= set(range(len(CLASSES)))
        # depth > 0 exactly where a surface was hit; invalid pixels are all-zero
        assert (depth[valid] > 0).all() and (depth[~valid] == 0).all()
        assert (normals[~valid] == 0).all()
        np.testing.assert_allclose(np.linalg.norm(normals[valid], axis=-1), 1.0, atol=1e-5)
        # normals face the camera: n . ray < 0
        assert (np.einsum('ijk,ijk->ij', normals, rays)[valid] < 0).all()
        # saliency: binary, 1 exactly on salient classes
        assert set(np.unique(out['saliency'])) <= {0, 1}
        np.testing.assert_array_equal(out['saliency'], np.isin(sem, salient_ids) & valid)
        person = sem == CLASS_ID['person']
        parts = out['human_parts']
        if person.any():
            with_person += 1
            assert ((parts >= 1) & (parts <= 6) == person).all()
            assert (parts[~person] == 0).all()
        else:
            assert (parts == 255).all()
    # the seed-0 samples cover both cases of the human-parts rule
    assert 0 < with_person < len(outs)


def test_screen_space_culling_matches_brute_force():
    gen = SyntheticSceneGenerator(H, W, seed=3)
    for i in range(4):
        scene = gen.scene(i)
        t_buf, id_buf = gen.renderer.cast(scene.primitives)
        # every primitive against every pixel, no projected bounds
        all_t = np.stack([p.intersect(gen.renderer.rays) for p in scene.primitives])
        np.testing.assert_array_equal(t_buf, all_t.min(0))
        hit = np.isfinite(all_t.min(0))
        np.testing.assert_array_equal(id_buf, np.where(hit, all_t.argmin(0), -1))


def test_floor_depth_and_normals_match_analytic_values():
    cam = PinholeCamera(H, W, 60.0)
    height, pitch = 1.5, math.radians(35.0)  # steep enough that every ray hits the floor
    floor = Quad((0, 0, 0), 1000, 1000, np.stack([[1, 0, 0], [0, 0, -1], [0, 1, 0]], 1),
                 label=CLASS_ID['floor'], material=sample_material('floor',
                                                                   np.random.default_rng(0)))
    pose = CameraPose((0.3, height, 2.0), yaw=0.0, pitch=pitch)
    out = SyntheticRenderer(cam).render(_scene(cam, pose, [floor]))
    v = np.arange(H, dtype=np.float64)[:, None]
    y = -(v - cam.cy) / cam.fy  # camera-frame ray y, independent of u
    # world y of the ray (x, y, -1) after pitching down: y cos(p) - sin(p)
    expected = np.broadcast_to(height / (math.sin(pitch) - y * math.cos(pitch)), (H, W))
    np.testing.assert_allclose(out['depth'], expected, rtol=1e-5)
    np.testing.assert_allclose(out['normals'].reshape(-1, 3),
                               np.tile([0.0, math.cos(pitch), math.sin(pitch)], (H * W, 1)),
                               atol=1e-6)
    assert (out['semseg'] == CLASS_ID['floor']).all()
    assert (out['saliency'] == 0).all() and (out['human_parts'] == 255).all()


def test_sphere_silhouette_and_centre_depth():
    cam = PinholeCamera(49, 65, 60.0)  # odd size: the centre pixel looks along -z
    ball = Sphere((0.0, 0.0, -5.0), 1.0, label=CLASS_ID['ball'],
                  material=sample_material('ball', np.random.default_rng(0)))
    out = SyntheticRenderer(cam).render(_scene(cam, CameraPose((0, 0, 0)), [ball]))
    assert out['depth'][24, 32] == pytest.approx(4.0, abs=1e-6)
    np.testing.assert_allclose(out['normals'][24, 32], [0, 0, 1], atol=1e-6)
    d = cam.ray_grid()
    dist = np.linalg.norm(np.cross(d, [0.0, 0.0, -5.0]), axis=-1) / np.linalg.norm(d, axis=-1)
    hit = out['semseg'] == CLASS_ID['ball']
    clear = np.abs(dist - 1.0) > 1e-6
    np.testing.assert_array_equal(hit[clear], (dist < 1.0)[clear])
    assert (out['semseg'][~hit] == 255).all() and (out['saliency'] == hit).all()


def _sdf(prim, p):
    """Signed distance (or implicit function for the ellipsoid) in the local frame."""
    q = prim.to_local(p)
    if isinstance(prim, Box):
        e = np.abs(q) - prim.half
        return np.linalg.norm(np.maximum(e, 0), axis=-1) + np.minimum(e.max(-1), 0)
    if isinstance(prim, Cylinder):
        e = np.stack([np.hypot(q[:, 0], q[:, 2]) - prim.radius,
                      np.abs(q[:, 1]) - prim.half_height], -1)
        return np.linalg.norm(np.maximum(e, 0), axis=-1) + np.minimum(e.max(-1), 0)
    if isinstance(prim, Capsule):
        q = q.copy()
        q[:, 1] -= np.clip(q[:, 1], -prim.half_length, prim.half_length)
        return np.linalg.norm(q, axis=-1) - prim.radius
    assert isinstance(prim, Ellipsoid)
    return np.sqrt(((q / prim.radii) ** 2).sum(-1)) - 1.0


@pytest.mark.parametrize('prim', [
    Box((0.2, -0.1, -3.0), (0.5, 0.3, 0.4), rot=rot_y(0.6) @ rot_x(0.4)),
    Cylinder((-0.1, 0.2, -3.0), 0.4, 0.6, rot=rot_x(0.7)),
    Capsule((-0.6, -0.4, -3.2), (0.5, 0.5, -2.6), 0.25),
    Ellipsoid((0.0, 0.0, -3.0), (0.6, 0.3, 0.4), rot=rot_y(1.0) @ rot_x(-0.5)),
], ids=['box', 'cylinder', 'capsule', 'ellipsoid'])
def test_primitive_hits_are_first_surface_points_with_matching_normals(prim):
    cam = PinholeCamera(40, 40, 50.0)
    d = cam.ray_grid().reshape(-1, 3)
    t = prim.intersect(d)
    hit = np.isfinite(t)
    assert 50 < hit.sum() < len(t)
    p = d[hit] * t[hit, None]
    np.testing.assert_allclose(_sdf(prim, p), 0.0, atol=1e-7)
    # nothing of the solid lies on the ray before the hit
    for frac in np.linspace(0.0, 0.999, 40):
        assert (_sdf(prim, p * frac) > -1e-9).all()
    # missed rays pass outside the solid
    for frac in np.linspace(0.5, 2.0, 40):
        assert (_sdf(prim, d[~hit] * 3.0 * frac) > 0).all()
    # normals: unit, finite-difference gradient of the distance, facing the rays
    n = prim.normal(p)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-9)
    grad = np.stack([(_sdf(prim, p + 1e-6 * e) - _sdf(prim, p - 1e-6 * e)) / 2e-6
                     for e in np.eye(3)], -1)
    grad /= np.linalg.norm(grad, axis=-1, keepdims=True)
    good = (grad * n).sum(-1) > 1 - 1e-4
    assert good.mean() > 0.97  # only edges / rims (non-differentiable) may disagree
    assert ((n * d[hit]).sum(-1) < 0).all()


def test_person_is_articulated_and_stands_on_the_floor():
    rng = np.random.default_rng(5)
    prims = make_person(rng, (1.0, -3.0), 0.3, 1.8)
    assert sorted(p.part for p in prims) == [1, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    assert {p.label for p in prims} == {CLASS_ID['person']}
    lowest = min(float(c.center[1] - abs(c.rot[1, 1]) * c.half_length - c.radius)
                 for c in prims if isinstance(c, Capsule))
    assert lowest == pytest.approx(0.0, abs=1e-9)
    head = next(p for p in prims if p.part == 1)
    torso = next(p for p in prims if p.part == 2)
    assert head.center[1] > torso.center[1]
    other = make_person(np.random.default_rng(6), (1.0, -3.0), 0.3, 1.8)
    limbs = [p.center for p in prims if p.part >= 3]
    assert not np.allclose(limbs, [p.center for p in other if p.part >= 3])


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='height must be an integer >= 16'):
        SyntheticSceneGenerator(8, 64)
    with pytest.raises(ValueError, match='seed must be a non-negative'):
        SyntheticSceneGenerator(32, 32, seed=-1)
    with pytest.raises(KeyError, match='unknown keys'):
        SyntheticSceneGenerator(32, 32, scene_cfg=dict(rooms=3))
    with pytest.raises(ValueError, match='room_width'):
        SyntheticSceneGenerator(32, 32, scene_cfg=dict(room_width=(5.0, 4.0)))
    with pytest.raises(ValueError, match='num must be a positive integer'):
        SyntheticDatasetWriter(str(tmp_path), 0, 32, 32)
    with pytest.raises(ValueError, match='val_fraction'):
        SyntheticDatasetWriter(str(tmp_path), 4, 32, 32, val_fraction=1.0)
    with pytest.raises(ValueError, match='leaves no training sample'):
        SyntheticDatasetWriter(str(tmp_path), 1, 32, 32, val_fraction=0.6)


def _read_dataset(root, ids):
    out = {}
    for sid in ids:
        j = os.path.join
        out[sid] = dict(
            img=cv2.cvtColor(cv2.imread(j(root, 'images', f'{sid}.png'), cv2.IMREAD_UNCHANGED),
                             cv2.COLOR_BGR2RGB),
            segmentation=cv2.imread(j(root, 'segmentation', f'{sid}.png'), cv2.IMREAD_UNCHANGED),
            human_parts=cv2.imread(j(root, 'human_parts', f'{sid}.png'), cv2.IMREAD_UNCHANGED),
            saliency=cv2.imread(j(root, 'saliency', f'{sid}.png'), cv2.IMREAD_UNCHANGED),
            normals=np.load(j(root, 'normals', f'{sid}.npy')),
            depth=np.load(j(root, 'depth', f'{sid}.npy')))
    return out


def test_writer_layout_dtypes_and_round_trip(tmp_path):
    root = str(tmp_path / 'syn')
    meta = SyntheticDatasetWriter(root, 5, 32, 48, seed=1, val_fraction=0.4).run()
    ids = [f'{i:06d}' for i in range(5)]
    assert sorted(os.listdir(root)) == sorted(LAYOUT_DIRS + ('meta.json',))
    ext = dict(images='png', segmentation='png', human_parts='png', saliency='png',
               normals='npy', depth='npy')
    for d, e in ext.items():
        assert sorted(os.listdir(os.path.join(root, d))) == [f'{i}.{e}' for i in ids]
    with open(os.path.join(root, 'gt_sets', 'train.txt')) as f:
        assert f.read().split() == ids[:3]
    with open(os.path.join(root, 'gt_sets', 'val.txt')) as f:
        assert f.read().split() == ids[3:]

    gen = SyntheticSceneGenerator(32, 48, seed=1)
    files = _read_dataset(root, ids)
    for i, sid in enumerate(ids):
        ref, got = gen(i), files[sid]
        np.testing.assert_array_equal(got['img'], ref['img'])  # RGB order survives cv2
        assert got['segmentation'].dtype == np.uint8 and got['segmentation'].shape == (32, 48)
        expected_seg = np.where(ref['semseg'] == 255, 0, ref['semseg'].astype(int) + 1)
        np.testing.assert_array_equal(got['segmentation'], expected_seg)
        np.testing.assert_array_equal(got['human_parts'], ref['human_parts'])
        assert set(np.unique(got['saliency'])) <= {0, 255}
        np.testing.assert_array_equal(got['saliency'], ref['saliency'] * 255)
        assert got['normals'].dtype == np.float32 and got['normals'].shape == (32, 48, 3)
        assert got['depth'].dtype == np.float32 and got['depth'].shape == (32, 48)
        np.testing.assert_array_equal(got['normals'], ref['normals'])
        np.testing.assert_array_equal(got['depth'], ref['depth'])

    with open(os.path.join(root, 'meta.json')) as f:
        disk = json.load(f)
    assert disk['classes'] == list(CLASSES) and len(disk['palette']) == len(CLASSES)
    assert disk['size'] == [32, 48] and disk['seed'] == 1 and disk['num_samples'] == 5
    assert disk['counts']['train'] == 3 and disk['counts']['val'] == 2
    assert disk['camera']['K'][0][2] == pytest.approx(23.5)
    assert disk['version'] and meta['images_per_s'] > 0
    seg_px = sum(int((files[s]['segmentation'] > 0).sum()) for s in ids)
    assert sum(disk['counts']['pixels_per_class'].values()) == seg_px
    person_imgs = sum(int((files[s]['human_parts'] != 255).any()) for s in ids)
    assert disk['counts']['with_person'] == person_imgs


def test_writer_directory_rules_and_workers(tmp_path):
    root = str(tmp_path / 'syn')
    SyntheticDatasetWriter(root, 4, 32, 32, seed=0).run()
    first = _read_dataset(root, ['000003'])
    SyntheticDatasetWriter(root, 4, 32, 32, seed=0).run()  # same settings: allowed
    with pytest.raises(FileExistsError, match=r'different settings \(seed: existing 0'):
        SyntheticDatasetWriter(root, 4, 32, 32, seed=2).run()
    # two worker processes and --overwrite: files replaced, same content per (seed, i)
    SyntheticDatasetWriter(root, 4, 32, 32, seed=2, workers=2, overwrite=True).run()
    assert not np.array_equal(_read_dataset(root, ['000003'])['000003']['img'],
                              first['000003']['img'])
    SyntheticDatasetWriter(root, 4, 32, 32, seed=0, workers=2, overwrite=True).run()
    again = _read_dataset(root, ['000003'])['000003']
    for k, v in first['000003'].items():
        np.testing.assert_array_equal(again[k], v)
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not empty and has no meta.json'):
        SyntheticDatasetWriter(str(other), 2, 32, 32).run()
