"""Tests of the task colourisation and panel helpers."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mtdense.visualization import (PARTS_PALETTE, colorize_depth, colorize_labels,
                                   colorize_normals, colorize_parts, colorize_saliency,
                                   colorize_task, default_palette, make_panel, render_sample,
                                   to_numpy_map)


def test_default_palette_distinct_and_not_black():
    pal = default_palette(40)
    assert pal.shape == (40, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal}) == 40
    assert not (pal == 0).all(axis=1).any()


def test_labels_palette_and_ignore():
    label = np.array([[0, 1], [2, 255]], np.uint8)
    pal = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    out = colorize_labels(label, pal)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[0, 1], [40, 50, 60])
    np.testing.assert_array_equal(out[1, 1], [0, 0, 0])
    out = colorize_labels(label, pal, ignore_color=(255, 0, 255))
    np.testing.assert_array_equal(out[1, 1], [255, 0, 255])
    with pytest.raises(ValueError, match='palette has 2'):
        colorize_labels(label, pal[:2])


def test_parts_palette():
    parts = np.arange(7, dtype=np.uint8)[None].repeat(2, 0)
    parts[1, 0] = 255
    out = colorize_parts(parts)
    np.testing.assert_array_equal(out[0], PARTS_PALETTE)
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])
    np.testing.assert_array_equal(colorize_task('human_parts', parts), out)


def test_saliency_binary_and_probability():
    binary = np.array([[0, 1, 255]], np.uint8)
    out = colorize_saliency(binary)
    assert not np.array_equal(out[0, 0], out[0, 1])
    np.testing.assert_array_equal(out[0, 2], [0, 0, 0])
    assert out[0, 0].any() and out[0, 1].any()  # valid values are not black
    prob = np.array([[0.0, 1.0, 0.5]], np.float32)
    out_p = colorize_saliency(prob)
    np.testing.assert_array_equal(out_p[0, :2], out[0, :2])
    with pytest.raises(ValueError, match='0, 1'):
        colorize_saliency(np.array([[2]], np.uint8))
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        colorize_saliency(np.array([[1.5]], np.float32))


def test_normals_rgb_and_invalid_black():
    n = np.zeros((1, 3, 3), np.float32)
    n[0, 0] = [1, 0, 0]
    n[0, 1] = [0, -1, 0]
    out = colorize_normals(n)
    np.testing.assert_array_equal(out[0, 0], [255, 128, 128])
    np.testing.assert_array_equal(out[0, 1], [128, 0, 128])
    np.testing.assert_array_equal(out[0, 2], [0, 0, 0])
    # packed (3, H, W) tensors give the same picture
    np.testing.assert_array_equal(colorize_normals(torch.from_numpy(n).permute(2, 0, 1)), out)


def test_depth_colormap_over_valid_only():
    d = np.array([[0.0, 1.0, 2.0, 3.0]], np.float32)
    out = colorize_depth(d)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
    assert out[0, 1:].any(axis=-1).all()
    assert len({tuple(c) for c in out[0, 1:]}) == 3
    # the invalid zero does not stretch the range: the nearest valid pixel gets the low end
    np.testing.assert_array_equal(out[0, 1], colorize_depth(np.array([[1.0, 3.0]]))[0, 0])
    assert (colorize_depth(np.zeros((2, 2), np.float32)) == 0).all()
    fixed = colorize_depth(d, vmin=0.0, vmax=6.0)
    assert not np.array_equal(fixed[0, 3], out[0, 3])


def test_to_numpy_map_layouts():
    t = torch.arange(6, dtype=torch.int64).reshape(1, 2, 3)
    assert to_numpy_map(t).shape == (2, 3)
    assert to_numpy_map(PixelData(data=t)).shape == (2, 3)
    assert to_numpy_map(np.zeros((4, 5, 3))).shape == (4, 5, 3)
    with pytest.raises(ValueError, match='shape'):
        to_numpy_map(np.zeros((2, 4, 5, 3)))
    with pytest.raises(ValueError, match='shape'):
        to_numpy_map(np.zeros((1, 4, 5)))  # numpy arrays must be in the pipeline layout


def test_make_panel_tiles_and_labels():
    img = np.full((32, 40, 3), 100, np.uint8)
    maps = {'semseg': np.full((32, 40, 3), 50, np.uint8),
            'depth': np.full((16, 20, 3), 200, np.uint8)}  # other size: resized to the tile
    panel = make_panel(img, maps, gap=2)
    assert panel.shape == (32, 3 * 40 + 2 * 2, 3) and panel.dtype == np.uint8
    # tile contents below the label box, and the white gaps
    assert (panel[20:, 0:40] == 100).all()
    assert (panel[20:, 42:82] == 50).all()
    assert (panel[20:, 84:124] == 200).all()
    assert (panel[:, 40:42] == 255).all()
    # the label is drawn: white text on a black box in the top-left of each tile
    for x0 in (0, 42, 84):
        top = panel[:14, x0:x0 + 40]
        assert (top == 255).all(-1).any() and (top == 0).all(-1).any()
    grid = make_panel(img, {f'm{i}': img for i in range(5)}, ncols=3, gap=0)
    assert grid.shape == (64, 120, 3)
    titled = make_panel(None, {'a': img, 'b': img}, titles=['first', 'second'], gap=0)
    assert titled.shape == (32, 80, 3)
    with pytest.raises(ValueError, match='RGB uint8'):
        make_panel(img, {'bad': np.zeros((32, 40), np.uint8)})


def test_render_sample_all_tasks():
    h, w = 12, 16
    gts = {
        'semseg': np.random.default_rng(0).integers(0, 5, (h, w)).astype(np.uint8),
        'human_parts': np.full((h, w), 255, np.uint8),
        'saliency': np.zeros((h, w), np.uint8),
        'normals': np.tile(np.array([0, 0, 1], np.float32), (h, w, 1)),
        'depth': np.linspace(1, 5, h * w, dtype=np.float32).reshape(h, w),
    }
    panel = render_sample(np.zeros((h, w, 3), np.uint8), gts, palettes={'semseg':
                                                                        default_palette(5)},
                          ncols=3, gap=1)
    assert panel.shape == (2 * h + 1, 3 * w + 2, 3)
