"""Mistakes and bad inputs are caught before a run starts, or named when they happen (issue 11).

Each case was measured from the outside on the previous code: a corrupt file crashed
training after 6 iterations; a wrong num_classes failed only at the end-of-training
validation; a typo under default_hooks.checkpoint failed at the first save; --resume of
another model said "parameter group doesn't match" without the file; --cfg-options
max_iters=3 / data_root=... changed nothing in silence; a head init_cfg was ignored;
depth in millimetres and normals in [0, 1] passed without a word; an 8-class model was
evaluated on 40-class labels; a zero-size array gave ZeroDivisionError; a portrait
phone photo was predicted sideways; one corrupt image in a folder aborted tools/infer.py
without naming the rule to go on.
"""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.models import tiny_saliency_swin
from helpers.tiny_model import image_path
from helpers.toolrun import PYTHON, TINY_CONFIG, data_options, run_tool


def _copy_tree(src: str, dst) -> str:
    shutil.copytree(src, dst)
    return str(dst)


# ------------------------------------------------------------------ data found early
def test_corrupt_training_file_stops_the_run_before_the_first_iteration(synthetic_root,
                                                                        tmp_path):
    root = _copy_tree(synthetic_root, tmp_path / 'data')
    victim = os.path.join(root, 'images', '000003.png')
    with open(victim, 'r+b') as f:  # a truncated PNG: the header survives, the pixels do not
        f.truncate(200)
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path / 'w',
                     '--data-root', root], expect_rc=None)
    assert proc.returncode != 0
    assert '000003.png' in proc.stderr and '1 defect' in proc.stderr
    assert not list((tmp_path / 'w').glob('iter_*.pth'))
    log = '\n'.join(p.read_text() for p in (tmp_path / 'w').rglob('*.log'))
    assert 'Iter(train)' not in log  # not a single iteration ran


def test_check_dataset_lists_every_defect_with_its_file(synthetic_root, tmp_path):
    root = _copy_tree(synthetic_root, tmp_path / 'data')
    with open(os.path.join(root, 'images', '000001.png'), 'r+b') as f:
        f.truncate(100)
    np.save(os.path.join(root, 'depth', '000004.npy'), np.zeros((5, 5), np.float32))
    depth = np.load(os.path.join(synthetic_root, 'depth', '000002.npy'))
    np.save(os.path.join(root, 'depth', '000002.npy'), depth * 1000)  # millimetres
    normals = np.load(os.path.join(synthetic_root, 'normals', '000000.npy'))
    np.save(os.path.join(root, 'normals', '000000.npy'), (normals + 1) / 2)  # colours
    report = tmp_path / 'report.json'
    proc = run_tool([PYTHON, 'tools/check_dataset.py', TINY_CONFIG, '--data-root', root,
                     '--workers', '2', '--report', report], expect_rc=1)
    out = proc.stdout
    assert '000001.png' in out and '000004.npy' in out
    assert 'millimetres' in out and 'colours in [0, 1]' in out
    data = json.loads(report.read_text())
    defects = [d for split in data['splits'] for d in split['defects']]
    assert {os.path.basename(d['path']) for d in defects} >= {'000001.png', '000004.npy'}
    warned = [w for split in data['splits'] for w in split['warnings']]
    assert {os.path.basename(w['path']) for w in warned} >= {'000002.npy', '000000.npy'}


# -------------------------------------------------------------- configuration mistakes
@pytest.mark.parametrize('options,message', [
    (['model.num_classes=5'], r'model.num_classes=5 .* dataset has 8 classes'),
    (['default_hooks.checkpoint.intervall=3'],
     r"default_hooks.checkpoint: CheckpointHook has no argument 'intervall' "
     r"\(did you mean 'interval'\?\)"),
    (['max_iters=3'], r'max_iters.*changes nothing.*--iters'),
    (['data_root=/elsewhere'], r'data_root.*changes nothing.*--data-root'),
])
def test_configuration_mistakes_fail_before_building(synthetic_root, tmp_path, options,
                                                     message):
    import re
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path,
                     '--cfg-options', *data_options(synthetic_root), *options], expect_rc=None)
    assert proc.returncode != 0
    assert re.search(message, proc.stderr), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr  # a message, not a stack
    assert not list(tmp_path.glob('*/vis_data'))  # the runner was never built


def test_resume_of_another_models_checkpoint_names_the_file(tiny_run, tmp_path):
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path,
                     '--resume', tiny_run.ckpt, '--cfg-options',
                     *data_options(tiny_run.data_root), 'model.backbone.backbone.embed_dims=24'],
                    expect_rc=None)
    assert proc.returncode != 0
    assert f'{tiny_run.ckpt} does not match the model' in proc.stderr
    assert "parameter group" not in proc.stderr


def test_head_init_cfg_is_honoured_or_rejected(tmp_path):
    model = tiny_saliency_swin(init_cfg=dict(type='Constant', val=0.5, bias=0.25, layer='Conv2d'))
    model.init_weights()
    head = model.heads['saliency']
    assert torch.all(head.predictor.weight == 0.5) and torch.all(head.predictor.bias == 0.25)
    missing = tmp_path / 'head.pth'
    with pytest.raises(FileNotFoundError, match=r"head of task 'saliency'.*head\.pth"):
        tiny_saliency_swin(init_cfg=dict(type='Pretrained', checkpoint=str(missing)))


# -------------------------------------------------------------------- inputs
def test_model_with_other_class_count_than_the_labels_is_an_error():
    from mtdense.evaluation import MultiTaskMetric
    from mtdense.structures import MultiTaskDataSample
    s = MultiTaskDataSample(metainfo=dict(img_path='x.png'))
    s.set_gt('semseg', torch.tensor([[[0, 30, 39]]]))
    s.set_pred('semseg', torch.tensor([[[0, 1, 7]]]))
    from mmengine.structures import PixelData
    s.set_field(PixelData(data=torch.zeros(8, 1, 3)), 'logits_semseg', dtype=PixelData)
    metric = MultiTaskMetric(tasks=['semseg'])
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(40)])
    with pytest.raises(ValueError, match='x.png.*predicts 8 classes but the evaluation has 40'):
        metric.process({}, [s])


def _exif_jpeg(path, rgb: np.ndarray, orientation: int) -> None:
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, exif=exif, quality=95)


def test_exif_orientation_in_inference_but_not_in_dataset_readers(tmp_path):
    from mtdense.datasets.io import decode
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :10] = 255  # white on the left of the stored grid
    path = str(tmp_path / 'phone.jpg')
    _exif_jpeg(path, rgb, 6)  # 6: the displayed image is the stored one turned 90° clockwise
    stored = decode('image', path)
    shown = decode('image_exif', path)
    assert stored.shape == (20, 30, 3) and shown.shape == (30, 20, 3)
    assert shown[:8].mean() > 200 and shown[-8:].mean() < 50  # the white band is now on top


def test_inference_of_exif_photo_and_empty_array(tiny_setup, tmp_path):
    from mtdense.apis import inference_model, init_model
    setup = tiny_setup
    model = init_model(setup['config'], setup['checkpoint'])
    rgb = np.asarray(Image.open(image_path(setup)))
    path = str(tmp_path / 'portrait.jpg')
    _exif_jpeg(path, rgb, 6)
    out = inference_model(model, path)
    assert out['semseg'].shape == (rgb.shape[1], rgb.shape[0])  # upright, as displayed
    with pytest.raises(ValueError, match=r'H, W > 0'):
        inference_model(model, np.zeros((0, 5, 3), np.uint8))
    # a folder with one corrupt image: named; stop (default) or go on with --on-error skip
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('a.png', 'b.png', 'c.png'):
        Image.fromarray(rgb).save(folder / name)
    (folder / 'b.png').write_bytes(b'not a png')
    args = [PYTHON, 'tools/infer.py', folder, '--config', setup['config'], '--checkpoint',
            setup['checkpoint'], '--out']
    stop = run_tool([*args, tmp_path / 'o1'], expect_rc=1)
    assert 'b.png' in stop.stderr and '--on-error skip' in stop.stderr
    assert sorted(os.listdir(tmp_path / 'o1')) == ['a.png']
    skip = run_tool([*args, tmp_path / 'o2', '--on-error', 'skip'], expect_rc=1)
    assert sorted(os.listdir(tmp_path / 'o2')) == ['a.png', 'c.png']
    assert '1 image(s) skipped' in skip.stderr and 'b.png' in skip.stderr
