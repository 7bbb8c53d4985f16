"""Metrics do not depend on the test batch size or the number of processes.

A fixed checkpoint of the PASCAL zoo config (tiny backbone) is evaluated on four
validation images of four different sizes at test batch 1, 2 and 4 in one process and
with 2 processes (tools/dist_test.sh, gloo): every metric agrees to 1e-6. The control
shows the test can fail: the old test pipeline (keep-ratio resize, batches padded to
their largest image) gives other metrics at batch 4 than at batch 1.
"""
import copy
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mtdense.engine.runner import build_runner
from mtdense.utils import register_all_modules
from smoke import shrink

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'vmt' / 'vmt_swin-t_pascal-mt.py'


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A PASCAL tree with 4 val images of 4 sizes, the shrunk config and a checkpoint."""
    from mtdense.datasets.synthetic import ReleaseLayoutWriter
    from mtdense.registry import MODELS
    register_all_modules()
    base = tmp_path_factory.mktemp('invariance')
    root = str(base / 'PASCAL_MT')
    ReleaseLayoutWriter(root, 'pascal-mt', num=6, seed=8, val_fraction=0.67).run()
    cfg = Config.fromfile(str(CONFIG))
    shrink(cfg, root, str(base / 'work'))
    cfg_path = str(base / 'vmt_tiny_pascal.py')
    cfg.dump(cfg_path)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    with torch.no_grad():  # non-trivial predictions: perturb every weight
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ckpt = str(base / 'model.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return dict(cfg=cfg, cfg_path=cfg_path, ckpt=ckpt, root=root, base=base)


def _evaluate(cfg: Config, ckpt: str, batch: int, work_dir: str) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader.batch_size = batch
    cfg.load_from = ckpt
    cfg.work_dir = work_dir
    return build_runner(cfg).test()


def _assert_same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        if math.isnan(a[k]) and math.isnan(b[k]):
            continue
        assert abs(a[k] - b[k]) <= 1e-6, f'{what}: {k} {a[k]} vs {b[k]}'


def test_val_images_have_different_sizes(setup):
    from mtdense.datasets import PascalContextMTDataset
    ds = PascalContextMTDataset(setup['root'], split='val')
    sizes = {ds.load_sample(i)['img'].shape[:2] for i in range(len(ds))}
    assert len(ds) == 4 and len(sizes) == 4


def test_metrics_equal_at_batch_1_2_4_and_with_2_processes(setup, tmp_path):
    ref = _evaluate(setup['cfg'], setup['ckpt'], 1, str(tmp_path / 'b1'))
    assert ref['semseg/mIoU'] > 0
    for batch in (2, 4):
        _assert_same(ref, _evaluate(setup['cfg'], setup['ckpt'], batch, str(tmp_path / f'b{batch}')),
                     f'batch {batch}')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    out = tmp_path / 'dist_metrics.json'
    env = dict(__import__('os').environ, PORT=str(port), PYTHON=sys.executable,
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(['bash', 'tools/dist_test.sh', setup['cfg_path'], setup['ckpt'], '2',
                           '--work-dir', str(tmp_path / 'dist'), '--metrics-out', str(out),
                           '--cfg-options', 'test_dataloader.batch_size=2'],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same(ref, json.loads(out.read_text())['metrics'], '2 processes')


def test_control_batch_padding_changes_metrics(setup, tmp_path):
    """Without a fixed test size the batch's padding reaches the windowed backbone."""
    cfg = copy.deepcopy(setup['cfg'])
    cfg.model.data_preprocessor.allow_mixed_test_sizes = True
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='LoadMultiTaskImage'), dict(type='MTResize', scale=(448, 448), keep_ratio=True),
        dict(type='LoadMultiTaskAnnotations'), dict(type='PackMultiTaskInputs')]
    one = _evaluate(cfg, setup['ckpt'], 1, str(tmp_path / 'c1'))
    four = _evaluate(cfg, setup['ckpt'], 4, str(tmp_path / 'c4'))
    diffs = [abs(one[k] - four[k]) for k in one if not math.isnan(one[k])]
    assert max(diffs) > 1e-3
