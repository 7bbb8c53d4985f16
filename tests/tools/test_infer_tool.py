"""Tests of ``tools/infer.py`` (``mtdense.cli.infer`` in-process; the script as a program)
on a tiny VMT-Adapter Swin and synthetic images."""
from __future__ import annotations

import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from helpers.tiny_model import H, TASKS, W, image_path
from helpers.toolrun import ROOT
from mtdense.cli import infer as tool

TOOL = osp.join(ROOT, 'tools', 'infer.py')
GAP = 2


@pytest.fixture(scope='module')
def setup(tiny_setup, tmp_path_factory):
    """``tiny_setup`` with ``images``: a folder of two scenes and a text file."""
    images = tmp_path_factory.mktemp('images')
    for i in range(2):
        shutil.copy(image_path(tiny_setup, i), images / f'im{i}.png')
    (images / 'notes.txt').write_text('not an image')
    return dict(tiny_setup, images=str(images))


def _args(setup, inp, out, *extra):
    return [inp, '--config', setup['config'], '--checkpoint', setup['checkpoint'], '--out',
            str(out), *extra]


def test_folder_panels_and_raw(setup, tmp_path):
    from mtdense.apis import inference_model, init_model
    out = tmp_path / 'out'
    assert tool.main(_args(setup, setup['images'], out, '--save-raw')) == 0
    assert sorted(os.listdir(out)) == ['im0.npz', 'im0.png', 'im1.npz', 'im1.png']
    panel = cv2.imread(str(out / 'im1.png'))[..., ::-1]
    zoom = -(-192 // H)  # tiles zoomed to a short side >= 192 px
    assert panel.shape == (H * zoom, 6 * W * zoom + 5 * GAP, 3)  # image + 5 task tiles
    model = init_model(setup['config'], setup['checkpoint'])
    expected = inference_model(model, osp.join(setup['images'], 'im1.png'))
    with np.load(out / 'im1.npz') as raw:
        assert sorted(raw.files) == sorted(TASKS)
        for task in TASKS:
            assert raw[task].shape == expected[task].shape
            # compact storage: labels uint8, maps float16 (compressed .npz)
            is_label = np.issubdtype(expected[task].dtype, np.integer)
            assert raw[task].dtype == (np.uint8 if is_label else np.float16)
            tol = 0 if is_label else 1e-3 * max(1.0, float(np.abs(expected[task]).max()))
            np.testing.assert_allclose(raw[task].astype(expected[task].dtype), expected[task],
                                       rtol=0, atol=tol)
    # The semseg tile is coloured with the checkpoint's palette (its dataset_meta).
    from mtdense.visualization import colorize_labels
    tile = panel[:, W * zoom + GAP:2 * W * zoom + GAP]
    want = colorize_labels(expected['semseg'], np.array(setup['palette'], np.uint8))
    want = cv2.resize(want, (W * zoom, H * zoom), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(tile[40:], want[40:])


def test_single_image_without_raw(setup, tmp_path):
    out = tmp_path / 'single'
    assert tool.main(_args(setup, osp.join(setup['images'], 'im0.png'), out)) == 0
    assert os.listdir(out) == ['im0.png']


def test_input_errors(setup, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert tool.main(_args(setup, str(empty), tmp_path / 'o')) == 1
    assert 'holds no image files' in capsys.readouterr().err
    assert tool.main(_args(setup, str(tmp_path / 'missing.png'), tmp_path / 'o')) == 1
    assert 'neither an image file nor a folder' in capsys.readouterr().err
    clash = tmp_path / 'clash'
    clash.mkdir()
    for name in ('a.png', 'a.jpg'):
        cv2.imwrite(str(clash / name), np.zeros((8, 8, 3), np.uint8))
    assert tool.main(_args(setup, str(clash), tmp_path / 'o')) == 1
    assert 'would both be written as a.png' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        tool.main([setup['images'], '--config', setup['config'], '--out', str(tmp_path)])
    assert exc.value.code == 2  # --checkpoint is required


def test_command_line(setup, tmp_path):
    """The script runs as a program (fresh interpreter, no test-only imports)."""
    out = tmp_path / 'cli'
    res = subprocess.run([sys.executable, TOOL, *_args(setup, setup['images'], out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(os.listdir(out)) == ['im0.png', 'im1.png']
    assert '2 image(s) in' in res.stdout
