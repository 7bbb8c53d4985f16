"""Tests of ``MultiTaskVisualizer`` and ``MultiTaskVisualizationHook``."""
from __future__ import annotations

import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from mtdense.engine.hooks.visualization_hook import MultiTaskVisualizationHook
from mtdense.structures import MultiTaskDataSample
from mtdense.visualization import (colorize_depth, colorize_labels, colorize_normals,
                                   colorize_saliency)
from mtdense.visualization.colorize import PARTS_PALETTE
from mtdense.visualization.visualizer import MultiTaskVisualizer

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
H, W = 40, 48
GAP = 2
PALETTE = [[200, 10, 10], [10, 200, 10], [10, 10, 200], [200, 200, 10]]
_names = iter(range(10 ** 6))


def make_vis(**kwargs) -> MultiTaskVisualizer:
    kwargs.setdefault('min_tile_side', 0)
    kwargs.setdefault('font_scale', 0.3)
    return MultiTaskVisualizer(name=f'test_vis_{next(_names)}', **kwargs)


def make_maps(seed: int = 0, h: int = H, w: int = W) -> dict:
    """Random maps of every task in the packed (C, H, W) tensor layout."""
    rng = np.random.default_rng(seed)
    semseg = rng.integers(0, len(PALETTE), (h, w))
    semseg[0, :5] = 255
    parts = rng.integers(0, 7, (h, w))
    normals = rng.normal(size=(3, h, w)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=0, keepdims=True)
    depth = rng.uniform(1, 5, (h, w)).astype(np.float32)
    return dict(semseg=torch.from_numpy(semseg)[None], human_parts=torch.from_numpy(parts)[None],
                saliency=torch.from_numpy(rng.integers(0, 2, (h, w)))[None],
                normals=torch.from_numpy(normals), depth=torch.from_numpy(depth)[None])


def make_sample(gt_tasks=TASKS, pred_tasks=TASKS, seed=0, h=H, w=W, **meta) -> MultiTaskDataSample:
    gts, preds = make_maps(seed, h, w), make_maps(seed + 1, h, w)
    preds['saliency'] = preds['saliency'].float() * 0.8 + 0.1  # probabilities
    preds['semseg'][preds['semseg'] == 255] = 0
    sample = MultiTaskDataSample(metainfo=dict(tasks=list(gt_tasks), ori_shape=(h, w), **meta))
    for t in gt_tasks:
        sample.set_gt(t, gts[t])
    for t in pred_tasks:
        sample.set_pred(t, preds[t])
    return sample


def tile(panel: np.ndarray, row: int, col: int, th: int = H, tw: int = W) -> np.ndarray:
    y, x = row * (th + GAP), col * (tw + GAP)
    return panel[y:y + th, x:x + tw]


BODY = slice(20, None)  # rows below the title box (font scale 0.3)


def _np(t):
    arr = t.numpy()
    return arr.transpose(1, 2, 0) if arr.shape[0] == 3 else arr[0]


# ------------------------------------------------------------------------ visualizer
def test_registered_and_built_from_config():
    from mtdense.registry import VISUALIZERS
    vis = VISUALIZERS.build(dict(type='MultiTaskVisualizer', name='test_vis_registry',
                                 min_tile_side=0))
    assert isinstance(vis, MultiTaskVisualizer) and vis.min_tile_side == 0


def test_panel_layout_and_tiles(tmp_path):
    vis = make_vis()
    vis.dataset_meta = dict(classes=('a', 'b', 'c', 'd'), palette=PALETTE)
    img = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    sample = make_sample()
    out_file = str(tmp_path / 'sub' / 'panel.png')
    panel = vis.add_datasample('s', img, sample, out_file=out_file)
    # 2 rows (GT, pred) x (image + 5 tasks), 2 px white gaps.
    assert panel.shape == (2 * H + GAP, 6 * W + 5 * GAP, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(cv2.imread(out_file)[..., ::-1], panel)  # written as RGB
    for row in range(2):
        np.testing.assert_array_equal(tile(panel, row, 0)[BODY], img[BODY])
    gt = {t: _np(sample.get_gt(t).data) for t in TASKS}
    pred = {t: _np(sample.get_pred(t).data) for t in TASKS}
    expected_gt = [colorize_labels(gt['semseg'], np.array(PALETTE, np.uint8)),
                   colorize_labels(gt['human_parts'], PARTS_PALETTE),
                   colorize_saliency(gt['saliency']), colorize_normals(gt['normals']),
                   colorize_depth(gt['depth'])]
    # Predicted depth is coloured on the ground truth's range, so both rows are comparable.
    rng = (float(gt['depth'].min()), float(gt['depth'].max()))
    expected_pred = [colorize_labels(pred['semseg'], np.array(PALETTE, np.uint8)),
                     colorize_labels(pred['human_parts'], PARTS_PALETTE),
                     colorize_saliency(pred['saliency']), colorize_normals(pred['normals']),
                     colorize_depth(pred['depth'], vmin=rng[0], vmax=rng[1])]
    for col, (e_gt, e_pred) in enumerate(zip(expected_gt, expected_pred), 1):
        np.testing.assert_array_equal(tile(panel, 0, col)[BODY], e_gt[BODY], err_msg=TASKS[col - 1])
        np.testing.assert_array_equal(tile(panel, 1, col)[BODY], e_pred[BODY],
                                      err_msg=TASKS[col - 1])
    assert (tile(panel, 0, 1)[0, :5] == 0).all()  # ignored labels are black


def test_shared_depth_range():
    vis = make_vis()
    sample = make_sample(gt_tasks=['depth'], pred_tasks=['depth'])
    gt = sample.gt_depth.data
    sample.set_pred('depth', gt.clone())
    panel = vis.add_datasample('d', None, sample, out_file=None)
    np.testing.assert_array_equal(tile(panel, 0, 0)[BODY], tile(panel, 1, 0)[BODY])
    sample.set_pred('depth', gt * 10)  # all beyond the GT range: the far end of the colormap
    panel = vis.add_datasample('d', None, sample)
    far = colorize_depth(np.array([[1.0, 2.0]], np.float32))[0, 1]
    assert (tile(panel, 1, 0)[BODY] == far).all()


def test_missing_maps_rows_and_zoom():
    vis = make_vis(min_tile_side=3 * H)  # zoom x3
    sample = make_sample(gt_tasks=['semseg', 'depth'], pred_tasks=['semseg'])
    panel = vis.add_datasample('m', None, sample)
    th, tw = 3 * H, 3 * W
    assert panel.shape == (2 * th + GAP, 2 * tw + GAP, 3)
    assert (tile(panel, 1, 1, th, tw)[BODY] == 128).all()  # no depth prediction: grey tile
    only_pred = vis.add_datasample('m', None, sample, draw_gt=False)
    assert only_pred.shape == (th, tw, 3)  # only the predicted task
    with pytest.raises(ValueError, match='both False'):
        vis.add_datasample('m', None, sample, draw_gt=False, draw_pred=False)
    with pytest.raises(ValueError, match='no gt_<task> / pred_<task>'):
        vis.add_datasample('m', None, MultiTaskDataSample())
    with pytest.raises(ValueError, match=r'RGB uint8 \(H, W, 3\)'):
        vis.add_datasample('m', np.zeros((H, W), np.float32), sample)
    with pytest.raises(ValueError, match='data_sample is None'):
        vis.add_datasample('m', None, None)


def test_palettes_and_draw_predictions():
    vis = make_vis(palettes=dict(semseg=PALETTE[::-1]))
    vis.dataset_meta = dict(palette=PALETTE)
    np.testing.assert_array_equal(vis.palette_of('semseg'), PALETTE[::-1])  # override wins
    np.testing.assert_array_equal(vis.palette_of('semseg_2'), PALETTE[::-1])  # clone: base's
    assert vis.palette_of('depth') is None
    vis2 = make_vis()
    vis2.dataset_meta = dict(palette=PALETTE)
    np.testing.assert_array_equal(vis2.palette_of('semseg'), PALETTE)
    with pytest.raises(ValueError, match='not a segmentation task'):
        make_vis(palettes=dict(depth=PALETTE))
    img = np.zeros((H, W, 3), np.uint8)
    preds = {t: _np(v) for t, v in make_maps(5).items()}
    preds['saliency'] = preds['saliency'].astype(np.float32)
    panel = vis2.draw_predictions(img, preds)
    assert panel.shape == (H, 6 * W + 5 * GAP, 3)
    np.testing.assert_array_equal(tile(panel, 0, 4)[BODY], colorize_normals(preds['normals'])[BODY])


def test_add_datasample_to_backend(tmp_path):
    vis = make_vis(vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path))
    panel = vis.add_datasample('backend_sample', None, make_sample(), step=3)
    written = tmp_path / 'vis_data' / 'vis_image' / 'backend_sample_3.png'
    assert written.is_file()
    np.testing.assert_array_equal(cv2.imread(str(written))[..., ::-1], panel)


# ------------------------------------------------------------------------------ hook
def _write_images(folder, n, h=H, w=W):
    paths = []
    for i in range(n):
        p = str(folder / f'img_{i}.png')
        cv2.imwrite(p, np.full((h, w, 3), 20 * i, np.uint8))
        paths.append(p)
    return paths


def _fake_runner(visualizer=None, it=7):
    from mmengine.visualization import Visualizer
    vis = visualizer or Visualizer(name=f'test_plain_vis_{next(_names)}')
    return SimpleNamespace(visualizer=vis, iter=it)


def test_hook_registered_and_validates(tmp_path):
    from mtdense.registry import HOOKS
    hook = HOOKS.build(dict(type='MultiTaskVisualizationHook', out_dir=str(tmp_path),
                            max_samples=2))
    assert isinstance(hook, MultiTaskVisualizationHook) and hook.interval == 1
    with pytest.raises(ValueError, match='max_samples'):
        MultiTaskVisualizationHook(str(tmp_path), max_samples=0)
    with pytest.raises(ValueError, match='interval'):
        MultiTaskVisualizationHook(str(tmp_path), interval=0)
    with pytest.raises(ValueError, match='out_dir'):
        MultiTaskVisualizationHook('')


def test_hook_max_samples_interval_and_folders(tmp_path):
    paths = _write_images(tmp_path, 3)
    runner = _fake_runner()
    runner.visualizer.dataset_meta = dict(palette=PALETTE)
    out = tmp_path / 'show'
    hook = MultiTaskVisualizationHook(str(out), max_samples=4, interval=2)

    def batch():
        return [make_sample(img_path=p, img_id=f'id/{i}') for i, p in enumerate(paths)]

    hook.before_test_epoch(runner)
    for idx in range(4):  # iterations 0 and 2 are drawn; 4 samples at most
        hook.after_test_iter(runner, idx, dict(inputs=None), batch())
    assert [osp.basename(p) for p in hook.written] == ['id_0.png', 'id_1.png', 'id_2.png',
                                                       'id_0_3.png']
    assert sorted(f.name for f in out.iterdir()) == ['id_0.png', 'id_0_3.png', 'id_1.png',
                                                     'id_2.png']
    panel = cv2.imread(str(out / 'id_1.png'))[..., ::-1]
    zoom = -(-192 // H)  # default min_tile_side 192
    assert panel.shape[:2] == (2 * H * zoom + GAP, 6 * W * zoom + 5 * GAP)
    assert (panel[H * zoom - 1, 1] == 20).all()  # the image read from img_path (value 20)
    # The hook's own visualizer got the runner's dataset metainfo (palette).
    assert hook._visualizer.dataset_meta is runner.visualizer.dataset_meta
    # Validation during training: one folder per training iteration, counter reset.
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, dict(inputs=None), batch()[:1])
    assert (out / 'iter_7' / 'id_0.png').is_file() and len(hook.written) == 1


def test_hook_uses_runner_visualizer_and_batch_inputs(tmp_path):
    vis = make_vis()
    runner = _fake_runner(visualizer=vis)
    hook = MultiTaskVisualizationHook(str(tmp_path), max_samples=1)
    hook.before_test_epoch(runner)
    # No img_path: the image comes from the packed uint8 input, cropped to img_shape.
    img = torch.zeros(3, H + 8, W + 16, dtype=torch.uint8)
    img[:, :H, :W] = 77
    sample = make_sample(img_id='x', img_shape=(H, W))
    hook.after_test_iter(runner, 0, dict(inputs=[img]), [sample])
    panel = cv2.imread(str(tmp_path / 'x.png'))[..., ::-1]
    assert hook._visualizer is None  # the runner's MultiTaskVisualizer was used
    assert panel.shape == (2 * H + GAP, 6 * W + 5 * GAP, 3)  # its min_tile_side=0
    assert (tile(panel, 1, 0)[BODY] == 77).all()


def test_hook_rank0_only(tmp_path, monkeypatch):
    import mtdense.engine.hooks.visualization_hook as mod
    monkeypatch.setattr(mod, 'is_main_process', lambda: False)
    hook = MultiTaskVisualizationHook(str(tmp_path / 'show'))
    runner = _fake_runner()
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, dict(inputs=None), [make_sample(img_id='a')])
    assert hook.written == [] and not (tmp_path / 'show').exists()


def test_tools_test_show_dir_with_real_model(tiny_setup, tmp_path):
    """tools/test.py --show-dir on a tiny VMT-Adapter Swin: panels of GT and predictions."""
    from mtdense.cli import test as test_tool
    setup = tiny_setup
    show = tmp_path / 'show'
    test_tool.main([
        setup['config'], setup['checkpoint'], '--work-dir', str(tmp_path / 'work'),
        '--show-dir', str(show), '--show-num', '2',
        # tools/test.py takes the class count from the config only
        '--cfg-options', f'model.num_classes={len(setup["classes"])}'])
    files = sorted(f.name for f in show.iterdir())
    assert files == ['000000.png', '000001.png']  # the first 2 of the 3 train-split samples
    panel = cv2.imread(str(show / '000000.png'))[..., ::-1]
    zoom = -(-192 // 48)  # 48 x 64 images, min_tile_side 192
    assert panel.shape == (2 * 48 * zoom + GAP, 6 * 64 * zoom + 5 * GAP, 3)
    # The test loop hands the dataset's metainfo to the visualizer: GT semseg is drawn with the
    # synthetic meta.json palette (black: ignored pixels).
    import json
    with open(osp.join(setup['data_root'], 'meta.json')) as f:
        palette = np.array(json.load(f)['palette'], np.uint8)
    gt_tile = tile(panel, 0, 1, 48 * zoom, 64 * zoom)[40:]
    colours = np.unique(gt_tile.reshape(-1, 3), axis=0)
    assert all((palette == c).all(axis=1).any() or (c == 0).all() for c in colours)
