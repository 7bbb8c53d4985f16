"""tools/train.py and tools/test.py end to end on CPU (tiny config, synthetic data)."""
import json
import math
import os
import os.path as osp
import re

import torch

from toolrun import KILL_ITER, PYTHON, TINY_CONFIG, TOTAL_ITERS, data_options, run_tool, train_log

TASK_METRICS = {
    'semseg': ('mIoU', 'pixAcc'),
    'human_parts': ('mIoU', 'pixAcc'),
    'saliency': ('mIoU', 'maxF'),
    'normals': ('mErr', 'median', 'rmse'),
    'depth': ('rmse', 'abs_rel', 'delta1'),
}


def _val_metrics_from_log(log: str) -> dict:
    """The last ``Iter(val)`` summary line of an mmengine log as {name: value}."""
    lines = [ln for ln in log.splitlines() if 'Iter(val)' in ln and 'semseg/mIoU' in ln]
    assert lines, 'no validation summary in the training log'
    pairs = re.findall(r'(\w+/[\w<.]+): (-?[\d.]+)', lines[-1])
    return {k: float(v) for k, v in pairs}


def test_train_runs_end_to_end(tiny_run):
    wd = tiny_run.work_dir
    for name in (f'iter_{KILL_ITER}.pth', f'iter_{TOTAL_ITERS}.pth', 'last_checkpoint'):
        assert osp.isfile(osp.join(wd, name)), f'{name} missing in {os.listdir(wd)}'
    log = train_log(wd)
    for it in range(1, TOTAL_ITERS + 1):
        assert f'Iter(train) [{it}/{TOTAL_ITERS}]' in log
    losses = [float(v) for v in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)', log)]
    assert len(losses) == TOTAL_ITERS and all(math.isfinite(v) for v in losses)
    val = _val_metrics_from_log(log)
    for task, names in TASK_METRICS.items():
        for name in names:
            assert f'{task}/{name}' in val, f'{task}/{name} not validated at the end'

    # Checkpoints hold only weights-only-safe objects, and only the PETL part trained.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tiny_run.ckpt) == []
    mid = torch.load(tiny_run.ckpt_mid, weights_only=True)['state_dict']
    end = torch.load(tiny_run.ckpt, weights_only=True)['state_dict']
    frozen = [k for k in end if k.startswith('backbone.host.backbone.')]
    trained = [k for k in end if k.startswith(('backbone.peft.', 'heads.'))]
    assert frozen and trained
    assert all(torch.equal(mid[k], end[k]) for k in frozen), 'the frozen backbone changed'
    changed = [k for k in trained if not torch.equal(mid[k], end[k])]
    assert any(k.startswith('backbone.peft.') for k in changed), 'adapters did not train'
    assert any(k.startswith('heads.') for k in changed), 'heads did not train'


def test_test_tool_prints_table_and_writes_json(tiny_run, tmp_path):
    out = tmp_path / 'metrics' / 'tiny.json'
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, tiny_run.ckpt,
                     '--work-dir', tmp_path / 'wd', '--metrics-out', out,
                     '--cfg-options', *data_options(tiny_run.data_root)])
    # the per-task table on stdout
    for task, names in TASK_METRICS.items():
        assert task in proc.stdout, f'task {task} missing from the printed table'
        for name in names:
            assert name in proc.stdout
    assert f'metrics written to {out}' in proc.stdout
    assert proc.stdout.count('mErr | median') == 1  # each table printed once
    assert 'No pre-trained weights' not in proc.stdout + proc.stderr  # mmseg's misleading notice
    with open(out) as f:
        result = json.load(f)
    assert result['checkpoint'] == str(tiny_run.ckpt)
    metrics = result['metrics']
    for task, names in TASK_METRICS.items():
        for name in names:
            assert math.isfinite(metrics[f'{task}/{name}'])
    # iter_8.pth is saved before the end-of-training validation runs, so evaluating it
    # again must give the logged numbers (the log prints 4 decimals).
    val = _val_metrics_from_log(train_log(tiny_run.work_dir))
    for key, value in val.items():
        assert abs(metrics[key] - value) <= 1e-3 * max(1.0, abs(value)), key


class _MarkerPayload:
    """Pickles to ``os.system('touch <marker>')``: runs when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_test_tool_refuses_malicious_checkpoint(synthetic_root, tmp_path):
    marker = tmp_path / 'PWNED'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _MarkerPayload(marker)}, evil)
    out = tmp_path / 'metrics.json'
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, evil, '--work-dir', tmp_path / 'wd',
                     '--metrics-out', out, '--cfg-options', *data_options(synthetic_root)],
                    expect_rc=None)
    assert proc.returncode != 0
    assert f'refused to load {evil}' in proc.stderr
    assert 'posix.system' in proc.stderr or 'os.system' in proc.stderr
    assert 'Traceback' not in proc.stderr, 'expected a one-line error, not a crash'
    assert not marker.exists(), 'tools/test.py executed code from the checkpoint'
    assert not out.exists()
