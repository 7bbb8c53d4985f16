"""tools/browse_dataset.py (``mtdense.cli.browse_dataset`` in-process): panels of dataset
samples through the pipeline, and the command line on the repository's synthetic config."""
import pytest

from helpers import ROOT
from mtdense.cli import browse_dataset as tool


@pytest.fixture(scope='module')
def browse_root(tmp_path_factory):
    """4 synthetic 32 x 40 scenes (3 train, 1 val)."""
    from mtdense.datasets.synthetic import SyntheticDatasetWriter
    root = tmp_path_factory.mktemp('synthetic')
    SyntheticDatasetWriter(str(root), num=4, height=32, width=40, seed=0,
                           val_fraction=0.25).run()
    return root


def test_browse_dataset_tool(browse_root, tmp_path):
    import cv2
    from mmengine.config import Config
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='SyntheticMTDataset', data_root=str(browse_root), split='train',
        tasks=['semseg', 'human_parts', 'saliency', 'normals', 'depth'], pipeline=[
            dict(type='LoadMultiTaskImage'), dict(type='LoadMultiTaskAnnotations'),
            dict(type='MTRandomRotate', prob=1.0, degree=20),
            dict(type='MTRandomCrop', crop_size=(24, 32)), dict(type='MTRandomFlip', prob=0.5),
            dict(type='MTPad', size=(32, 40)), dict(type='PackMultiTaskInputs')]))))
    paths = tool.browse(cfg, str(tmp_path / 'train'), num=2, ncols=3, scale=2)
    assert len(paths) == 2
    for p in paths:
        panel = cv2.imread(p)
        # 6 tiles (image + 5 tasks) of 32x40 zoomed 2x, 3 per row, 2 px gaps
        assert panel.shape == (2 * 64 + 2, 3 * 80 + 2 * 2, 3)
    # the CLI on the repository's synthetic config, split val, loading only
    out = tmp_path / 'val'
    assert tool.main([str(ROOT / 'configs/_base_/datasets/synthetic.py'), '--split', 'val',
                      '--no-pipeline', '--data-root', str(browse_root), '--out', str(out),
                      '--num', '5', '--scale', '1', '--ncols', '6']) == 0
    written = sorted(out.iterdir())
    assert len(written) == 1  # the val split holds one of the four samples
    assert cv2.imread(str(written[0])).shape == (32, 6 * 40 + 5 * 2, 3)
