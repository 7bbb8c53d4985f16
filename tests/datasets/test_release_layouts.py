"""Synthetic scenes in the PASCAL_MT / NYUD_MT release layouts decode back to the rendered truth."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtdense.datasets import NYUDv2MTDataset, PascalContextMTDataset
from mtdense.datasets.synthetic import ReleaseLayoutWriter, SyntheticSceneGenerator
from mtdense.datasets.synthetic.classes import CLASS_ID
from mtdense.datasets.synthetic.release_layouts import _NYU40, _VOC, PASCAL_SIZES

ROOT = Path(__file__).resolve().parents[2]


def _rendered(seed, index, size):
    return SyntheticSceneGenerator(size[0], size[1], seed)(index)


def test_pascal_layout_round_trip(tmp_path):
    root = tmp_path / 'PASCAL_MT'
    ReleaseLayoutWriter(str(root), 'pascal-mt', num=4, seed=5, val_fraction=0.25).run()
    ds = PascalContextMTDataset(str(root), split='train', lazy_init=False)
    assert len(ds) == 3 and len(PascalContextMTDataset(str(root), split='val')) == 1
    seen_person = False
    for i in range(3):
        s = ds.load_sample(i)
        truth = _rendered(5, i, PASCAL_SIZES[i])
        assert s['img'].shape[:2] == PASCAL_SIZES[i]  # the release's varied sizes
        voc = np.full(256, 255, np.uint8)
        for name, v in _VOC.items():
            voc[CLASS_ID[name]] = v
        np.testing.assert_array_equal(s['gt_semseg'], voc[truth['semseg']])
        np.testing.assert_array_equal(s['gt_saliency'], truth['saliency'])
        has_person = (truth['semseg'] == CLASS_ID['person']).any()
        seen_person |= bool(has_person)
        if has_person:
            np.testing.assert_array_equal(s['gt_human_parts'], truth['human_parts'])
        else:
            assert (s['gt_human_parts'] == 255).all()
        valid = np.any(truth['normals'] != 0, -1)
        got_valid = np.any(s['gt_normals'] != 0, -1)
        np.testing.assert_array_equal(got_valid, valid)
        # 8-bit PNG quantisation, then renormalised by the reader
        assert np.abs(s['gt_normals'][valid] - truth['normals'][valid]).max() < 0.02
    assert seen_person


def test_nyud_layout_round_trip_at_480x640(tmp_path):
    root = tmp_path / 'NYUD_MT'
    ReleaseLayoutWriter(str(root), 'nyud-mt', num=2, seed=1, val_fraction=0.5).run()
    ds = NYUDv2MTDataset(str(root), split='train')
    s = ds.load_sample(0)
    truth = _rendered(1, 0, (480, 640))
    assert s['img'].shape == (480, 640, 3)
    nyu = np.full(256, 255, np.uint8)
    for name, v in _NYU40.items():
        nyu[CLASS_ID[name]] = v - 1
    np.testing.assert_array_equal(s['gt_semseg'], nyu[truth['semseg']])
    np.testing.assert_array_equal(s['gt_depth'], truth['depth'])
    np.testing.assert_allclose(s['gt_normals'], truth['normals'], atol=1e-6)
    edge = np.load(root / 'edge' / '000000.npy')
    assert edge.shape == (480, 640) and set(np.unique(edge)) <= {0.0, 1.0} and edge.sum() > 0


def test_writer_refuses_foreign_directory_and_tool_cli(tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not a synthetic pascal-mt tree'):
        ReleaseLayoutWriter(str(other), 'pascal-mt', num=2).run()
    with pytest.raises(ValueError, match='layout must be one of'):
        ReleaseLayoutWriter(str(tmp_path / 'x'), 'coco', num=2)
    out = tmp_path / 'N'
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_synthetic.py'),
                           '--layout', 'nyud-mt', '--num', '2', '--size', '48', '64',
                           '--val-fraction', '0.5', '--out', str(out)],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert 'nyud-mt release layout' in proc.stdout and '(48, 64)' in proc.stdout
    assert (out / 'gt_sets' / 'val.txt').read_text() == '000001\n'
