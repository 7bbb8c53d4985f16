"""Scalars (losses, lr, per-task metrics, Δm) and prediction panels reach TensorBoard."""
import glob

from helpers.toolrun import PYTHON, TINY_CONFIG, data_options, run_tool


def _events(work_dir):
    """Tags of every event file of the run (TensorBoard shows a run's files together)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = glob.glob(f'{work_dir}/**/events.out.tfevents.*', recursive=True)
    assert files, f'no TensorBoard event file under {work_dir}'
    tags = {'scalars': [], 'images': []}
    for f in files:
        acc = EventAccumulator(f, size_guidance={'images': 0, 'scalars': 0})
        acc.Reload()
        for kind in tags:
            tags[kind] += acc.Tags()[kind]
    return tags


def test_train_and_test_log_to_tensorboard(tiny_run, tmp_path):
    opts = data_options(tiny_run.data_root)
    run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path / 'train',
              '--iters', '2', '--vis', 'local', 'tensorboard', '--cfg-options', *opts])
    tags = _events(tmp_path / 'train')
    assert {'loss', 'lr', 'loss_semseg'} <= set(tags['scalars']), tags['scalars']
    assert 'semseg/mIoU' in tags['scalars']  # the end-of-training validation
    run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--work-dir', tmp_path / 'test',
              '--vis', 'tensorboard', '--show-dir', tmp_path / 'panels', '--show-num', '2',
              '--cfg-options', *opts])
    tags = _events(tmp_path / 'test')
    assert {'test/semseg/mIoU', 'test/depth/rmse'} <= set(tags['scalars']), tags['scalars']
    assert len(tags['images']) == 2, tags['images']  # the prediction panels
    assert len(list((tmp_path / 'panels').glob('*.png'))) == 2  # and still the files
