"""Strict checkpoint loading in tools/test.py and load_from, and what a full checkpoint spares.

A checkpoint of another model (other tasks and embedding width) is refused with exit
status != 0 and a listing of the missing / unexpected / mis-shaped keys (at most 20 each,
then a count), unless --non-strict. A full-model checkpoint needs neither the config's
pretrained backbone file nor the training split.
"""
import json
import re

import torch

from toolrun import PYTHON, TINY_CONFIG, data_options, run_tool

# other tasks (unexpected head keys), another width (shapes), uncertainty weighting (missing)
OTHER_MODEL = ['model.backbone.backbone.embed_dims=24', "model.tasks=['semseg','depth']",
               "val_evaluator.tasks=['semseg','depth']", "test_evaluator.tasks=['semseg','depth']",
               'model.uncertainty_weighting=True']


def test_test_tool_refuses_another_models_checkpoint(tiny_run, tmp_path):
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--work-dir', tmp_path,
                     '--cfg-options', *data_options(tiny_run.data_root), *OTHER_MODEL],
                    expect_rc=None)
    assert proc.returncode != 0
    err = proc.stderr
    assert f'{tiny_run.ckpt} does not match the model' in err
    for title in ('missing in the checkpoint', 'in the checkpoint but not in the model',
                  'different shapes'):
        assert title in err, title
    # head keys of the dropped tasks are unexpected; widths are reported as shapes
    assert 'heads.human_parts' in err and 'task_log_vars.semseg' in err
    assert re.search(r'checkpoint \(16,\) vs model \(24,\)', err)
    # long listings are cut after 20 keys with a count
    listed = re.findall(r'^    \S.*$', err, flags=re.M)
    assert re.search(r'\.\.\. and \d+ more', err) and len(listed) <= 3 * 21
    assert not (tmp_path / 'metrics.json').exists()


def test_non_strict_loads_the_matching_keys(tiny_run, tmp_path):
    out = tmp_path / 'm.json'
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--non-strict',
                     '--work-dir', tmp_path, '--metrics-out', out, '--cfg-options',
                     *data_options(tiny_run.data_root), *OTHER_MODEL])
    assert 'loaded partially' in proc.stdout + proc.stderr
    assert set(json.loads(out.read_text())['metrics']) >= {'semseg/mIoU', 'depth/rmse'}


def test_full_checkpoint_needs_no_pretrained_file_nor_train_split(tiny_run, tmp_path):
    opts = [f'val_dataloader.dataset.data_root={tiny_run.data_root}',
            f'test_dataloader.dataset.data_root={tiny_run.data_root}',
            f'train_dataloader.dataset.data_root={tmp_path / "no_train_split"}',
            f'model.backbone.checkpoint={tmp_path / "absent_pretrained.pth"}']
    out = tmp_path / 'm.json'
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--work-dir', tmp_path,
                     '--metrics-out', out, '--show-dir', tmp_path / 'panels', '--show-num', '1',
                     '--cfg-options', *opts])
    assert 'not reading' in proc.stdout and 'absent_pretrained.pth' in proc.stdout
    assert len(list((tmp_path / 'panels').glob('*.png'))) == 1
    reference = json.loads(out.read_text())
    assert reference['protocol'] == {'eval_protocol': 'native', 'saliency_protocol': 'mtdense'}
    # the same numbers as with the regular config (the checkpoint held every weight)
    out2 = tmp_path / 'm2.json'
    run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--work-dir', tmp_path,
              '--metrics-out', out2, '--cfg-options', *data_options(tiny_run.data_root)])
    assert json.loads(out2.read_text())['metrics'] == reference['metrics']


def test_load_from_of_another_model_is_refused_before_training(tiny_run, tmp_path):
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path,
                     '--cfg-options', *data_options(tiny_run.data_root), *OTHER_MODEL,
                     f'load_from={tiny_run.ckpt}'], expect_rc=None)
    assert proc.returncode != 0
    assert 'does not match the model' in proc.stderr and 'different shapes' in proc.stderr
    assert not list(tmp_path.glob('iter_*.pth'))
    # the same model loads strictly and trains on
    run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', tmp_path / 'ok', '--iters', '1',
              '--cfg-options', *data_options(tiny_run.data_root), f'load_from={tiny_run.ckpt}'])
    state = torch.load(tmp_path / 'ok' / 'iter_1.pth', weights_only=True)['state_dict']
    assert set(state) == set(torch.load(tiny_run.ckpt, weights_only=True)['state_dict'])


def test_eval_protocol_flag_needs_mttestresize(tiny_run, tmp_path):
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt, '--eval-protocol',
                     'resized', '--cfg-options', *data_options(tiny_run.data_root)],
                    expect_rc=None)
    assert proc.returncode != 0 and 'needs an MTTestResize' in proc.stderr
