"""A crash or a full disk while saving never costs more than the interrupted interval.

With ``max_keep_ckpts=1`` (as the demo configs), ``tools/train.py`` is ended abruptly
at many points of the iteration-8 save -- the kernel kills it N bytes into the
checkpoint, or SIGKILL at the renames and at the deletion of ``iter_4.pth``
(``crash_probes.CrashDuringSaveHook``) -- and ``tools/train.py --resume`` must then
reach exactly the weights, optimizer and scheduler state of the uninterrupted run
(``tiny_run``). mmengine 0.10.7 deleted ``iter_4.pth`` before writing ``iter_8.pth``
in place, so these runs lost everything.

Then: a latest checkpoint that is missing / empty / truncated / damaged / not a
checkpoint is skipped on resume with a warning naming it; a write error names the
file and leaves the previous checkpoint; ``tools/test.py`` names a truncated file.
"""
from __future__ import annotations

import os
import os.path as osp
import signal
from typing import List

import pytest

from mtdense.engine import safe_load
from test_train_resume import _assert_nested_equal
from toolrun import (KILL_ITER, PYTHON, TINY_CONFIG, TOTAL_ITERS, data_options, run_tool,
                     train_log)

pytestmark = pytest.mark.slow

CKPT = f'iter_{TOTAL_ITERS}.pth'
OLD = f'iter_{KILL_ITER}.pth'


def _opts(data_root: str, max_keep: int = 1) -> List[str]:
    return ['--cfg-options', *data_options(data_root),
            f'default_hooks.checkpoint.interval={KILL_ITER}',
            f'default_hooks.checkpoint.max_keep_ckpts={max_keep}']


def _crash_config(path: str, point: str) -> str:
    with open(path, 'w') as f:
        f.write(f'_base_ = [{TINY_CONFIG!r}]\n'
                "custom_imports = dict(imports=['crash_probes'], allow_failed_imports=False)\n"
                "custom_hooks = [dict(type='SafeCheckpointHook'), "
                f"dict(type='CrashDuringSaveHook', iter={TOTAL_ITERS}, point={point!r})]\n")
    return path


def _assert_same_as_uninterrupted(work_dir: str, reference: str) -> None:
    ref, res = safe_load(reference), safe_load(osp.join(work_dir, CKPT))
    assert res['meta']['iter'] == TOTAL_ITERS
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        _assert_nested_equal(ref[key], res[key], key)


def _checkpoint_files(work_dir: str) -> List[str]:
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth') or '.pth.' in n)


# Byte offsets into the ~1.75 MB checkpoint (negative: from its end, in the zip directory),
# then the steps after the data is written.
BYTE_POINTS = [0, 4096, 500_000, 1_000_000, -4096, -1]
STEP_POINTS = [
    'before:replace:1',          # checkpoint complete and synced, not yet renamed
    'after:replace:1',           # iter_8.pth in place, last_checkpoint still names iter_4
    'after:replace:1+byte:5',    # killed 5 bytes into the new last_checkpoint
    'after:replace:2',           # last_checkpoint names iter_8, iter_4 not yet deleted
    'after:remove:1',            # iter_4 deleted; killed before the final validation
]


@pytest.mark.parametrize('point', [f'byte:{b}' for b in BYTE_POINTS] + STEP_POINTS)
def test_killed_during_save_then_resumed_equals_uninterrupted(tiny_run, tmp_path, point):
    if point.startswith('byte:') and int(point[5:]) < 0:
        point = f'byte:{osp.getsize(tiny_run.ckpt) + int(point[5:])}'
    work_dir = str(tmp_path / 'work')
    cfg = _crash_config(str(tmp_path / 'crash.py'), point)
    proc = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir,
                     *_opts(tiny_run.data_root)], expect_rc=None)
    assert proc.returncode in (-signal.SIGKILL, -signal.SIGXFSZ), (
        f'{point}: the run was not killed (rc {proc.returncode})\n{proc.stderr[-3000:]}')
    names = os.listdir(work_dir)
    if point.startswith('byte:'):
        size = int(point[5:])
        assert any(CKPT in n and osp.getsize(osp.join(work_dir, n)) == size for n in names), \
            f'not killed {size} bytes into the checkpoint: {_checkpoint_files(work_dir)}'
    # never a partial file under a checkpoint's name, and something to resume from
    for name in names:
        if name.endswith('.pth'):
            safe_load(osp.join(work_dir, name))
    assert OLD in names or CKPT in names, f'{point}: no checkpoint left: {names}'

    run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume',
              *_opts(tiny_run.data_root)])
    _assert_same_as_uninterrupted(work_dir, tiny_run.ckpt)
    # max_keep_ckpts=1: only iter_8.pth is left; the dead writer's temporary file is gone
    assert _checkpoint_files(work_dir) == [CKPT]
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, CKPT)


def test_write_error_names_the_file_and_keeps_the_previous_checkpoint(tiny_run, tmp_path):
    """A real EFBIG from the kernel at 1 MB into the checkpoint, as a full disk."""
    work_dir = str(tmp_path / 'work')
    cfg = _crash_config(str(tmp_path / 'full.py'), 'efbig:1000000')
    proc = run_tool([PYTHON, 'tools/train.py', cfg, '--work-dir', work_dir,
                     *_opts(tiny_run.data_root)], expect_rc=1)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert osp.join(work_dir, CKPT) in last_line and 'File too large' in last_line, last_line
    assert _checkpoint_files(work_dir) == [OLD]  # no partial file, the previous one kept
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, OLD)
    safe_load(osp.join(work_dir, OLD))

    run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume',
              *_opts(tiny_run.data_root)])
    assert f'resumed epoch: 0, iter: {KILL_ITER}' in train_log(work_dir)
    _assert_same_as_uninterrupted(work_dir, tiny_run.ckpt)


def _damage(path: str, how: str) -> None:
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    if how == 'missing':
        os.remove(path)
        return
    if how == 'truncated':
        data = data[:len(data) // 2]
    elif how == 'empty':
        data = bytearray()
    elif how == 'not_a_checkpoint':
        data = bytearray(b'<html>502 Bad Gateway</html>\n')  # e.g. a failed download
    elif how == 'damaged':
        data[len(data) // 2] ^= 0xFF  # zip intact, one tensor byte changed
    with open(path, 'wb') as f:
        f.write(bytes(data))


@pytest.mark.parametrize('how,expect', [('missing', 'file not found'),
                                        ('truncated', 'truncated'), ('empty', 'empty'),
                                        ('not_a_checkpoint', 'not a checkpoint'),
                                        ('damaged', 'CRC-32'), ('empty_pointer', 'truncated')])
def test_resume_skips_a_bad_latest_checkpoint(tiny_run, tmp_path, how, expect):
    work_dir = str(tmp_path / 'work')
    os.makedirs(work_dir)
    for name in (OLD, CKPT):
        with open(osp.join(tiny_run.work_dir, name), 'rb') as src, \
                open(osp.join(work_dir, name), 'wb') as dst:
            dst.write(src.read())
    bad = osp.join(work_dir, CKPT)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write('' if how == 'empty_pointer' else bad)
    _damage(bad, 'truncated' if how == 'empty_pointer' else how)

    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume',
                     *_opts(tiny_run.data_root, max_keep=-1)])
    log = train_log(work_dir)
    warning = next((ln for ln in log.splitlines() if 'skipping' in ln and bad in ln), None)
    assert warning is not None and expect in warning, log[-3000:]
    assert f'resumed epoch: 0, iter: {KILL_ITER}' in log
    _assert_same_as_uninterrupted(work_dir, tiny_run.ckpt)
    assert proc.returncode == 0


def test_tools_test_names_a_truncated_checkpoint(tiny_run, tmp_path):
    path = str(tmp_path / CKPT)
    with open(tiny_run.ckpt, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 3])
    proc = run_tool([PYTHON, 'tools/test.py', TINY_CONFIG, path, '--work-dir',
                     str(tmp_path / 'test'), '--cfg-options', *data_options(tiny_run.data_root)],
                    expect_rc=None)
    assert proc.returncode != 0
    last_line = proc.stderr.strip().splitlines()[-1]
    assert f'{path}: truncated' in last_line, last_line

