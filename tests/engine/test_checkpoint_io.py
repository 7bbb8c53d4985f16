"""Crash-safe checkpoint writing (mtdense.checkpoint.writer).

Writers are killed for real: a forked child writes with ``RLIMIT_FSIZE`` set and
``SIGXFSZ`` at its default action, so the kernel terminates it (no Python cleanup)
when the write reaches the chosen byte offset. The same limit with the signal ignored
(Python's default) makes the write fail with a genuine ``EFBIG`` from the kernel.
Read errors: test_checkpoint_errors.py; the whole save through tools/train.py:
tests/tools/test_checkpoint_crash.py.
"""
from __future__ import annotations

import errno
import io
import os
import os.path as osp
import pickle
import resource
import signal
from typing import List, Tuple

import pytest
import torch

import mtdense.checkpoint.writer as cio
from mtdense.engine.checkpoint import safe_load


def _ckpt_bytes(n: int = 20000, seed: int = 0) -> bytes:
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.randn(n, generator=g)}, 'meta': {'iter': seed}}, buf)
    return buf.getvalue()


def _temp_files(directory) -> List[str]:
    return [n for n in os.listdir(directory) if cio._TMP_RE.match(n)]


def _in_child(fn, fsize: int, kill: bool) -> Tuple[int, int]:
    """Run ``fn`` in a forked child with ``RLIMIT_FSIZE = fsize``; with ``kill`` the kernel
    terminates the child when it writes past that size. Returns (exit code, signal)."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL if kill else signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            code = fn() or 0
        except BaseException:  # noqa: B902 - report anything as a failure code
            code = 99
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -1, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), 0


# ---------------------------------------------------------------------------- writing
def test_atomic_write_replaces_the_file_with_plain_permissions(tmp_path):
    path = tmp_path / 'iter_4.pth'
    old, new = _ckpt_bytes(seed=1), _ckpt_bytes(seed=2)
    cio.atomic_write_bytes(path, old)
    cio.atomic_write_bytes(path, new)
    assert path.read_bytes() == new and _temp_files(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)  # not mkstemp's 0600


@pytest.mark.parametrize('frac', [0.0, 1e-9, 0.02, 0.3, 0.6, 0.97, 0.9999])
def test_writer_killed_mid_write_keeps_the_previous_file(tmp_path, frac):
    path = tmp_path / 'iter_8.pth'
    old, new = _ckpt_bytes(seed=1), _ckpt_bytes(seed=2)
    path.write_bytes(old)
    offset = int(frac * len(new))
    code, sig = _in_child(lambda: cio.atomic_write_bytes(path, new), offset, kill=True)
    assert sig == signal.SIGXFSZ, f'the writer was not killed at byte {offset} ({code})'
    assert path.read_bytes() == old  # never a partial file under the final name
    temps = _temp_files(tmp_path)
    assert len(temps) == 1 and (tmp_path / temps[0]).stat().st_size == offset
    # the next run removes the leftover of the dead writer, and only that
    (tmp_path / 'notes.txt').write_text('x')
    assert cio.remove_stale_temp_files(tmp_path) == [str(tmp_path / temps[0])]
    assert sorted(os.listdir(tmp_path)) == ['iter_8.pth', 'notes.txt']


def test_first_checkpoint_killed_mid_write_leaves_no_checkpoint(tmp_path):
    path = tmp_path / 'iter_4.pth'
    code, sig = _in_child(lambda: cio.atomic_write_bytes(path, _ckpt_bytes()), 5000, kill=True)
    assert sig == signal.SIGXFSZ and not path.exists()


def test_real_write_error_names_the_file_and_removes_the_partial_one(tmp_path):
    """The kernel refuses the write past RLIMIT_FSIZE (EFBIG), as a full disk would."""
    path = tmp_path / 'iter_8.pth'
    old = _ckpt_bytes(seed=1)
    path.write_bytes(old)
    report = tmp_path / 'error.txt'

    def write() -> int:
        try:
            cio.atomic_write_bytes(path, _ckpt_bytes(seed=2))
        except OSError as e:
            report.write_bytes(pickle.dumps((type(e).__name__, e.errno, str(e))))
            return 3
        return 0

    # the report itself is small: below the limit
    code, sig = _in_child(write, 100000 // 2, kill=False)
    assert (code, sig) == (3, 0)
    name, err, msg = pickle.loads(report.read_bytes())
    assert name == 'CheckpointWriteError' and err == errno.EFBIG
    assert str(path) in msg and 'File too large' in msg and 'was removed' in msg
    assert path.read_bytes() == old and _temp_files(tmp_path) == []


def test_disk_full_mid_write_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / 'iter_20.pth'
    old = _ckpt_bytes(seed=1)
    path.write_bytes(old)
    real = cio._write_all

    def half_then_enospc(f, data):
        real(f, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cio, '_write_all', half_then_enospc)
    with pytest.raises(cio.CheckpointWriteError) as info:
        cio.atomic_write_bytes(path, _ckpt_bytes(seed=2))
    e = info.value
    assert e.errno == errno.ENOSPC and e.filename == str(path)
    assert str(path) in str(e) and 'No space left on device' in str(e)
    new_len = len(_ckpt_bytes(seed=2))
    assert f'{new_len // 2} of {new_len} bytes written' in str(e)
    assert path.read_bytes() == old and _temp_files(tmp_path) == []


@pytest.mark.parametrize('where,err', [('open', errno.EACCES), ('fsync', errno.EIO),
                                       ('replace', errno.EXDEV)])
def test_other_os_errors_name_the_file(tmp_path, monkeypatch, where, err):
    path = tmp_path / 'last_checkpoint'
    path.write_text('old')

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    if where == 'open':
        real_open = os.open
        monkeypatch.setattr(os, 'open', lambda p, *a, **k: fail() if '.tmp-' in str(p)
                            else real_open(p, *a, **k))
    else:
        monkeypatch.setattr(os, where, fail)
    with pytest.raises(cio.CheckpointWriteError) as info:
        cio.write_last_checkpoint(tmp_path, '/w/iter_8.pth')
    assert info.value.errno == err and str(path) in str(info.value)
    assert os.strerror(err) in str(info.value)
    monkeypatch.undo()
    assert path.read_text() == 'old' and _temp_files(tmp_path) == []


def test_last_checkpoint_round_trip_and_empty_pointer(tmp_path):
    assert cio.read_last_checkpoint(tmp_path) is None
    cio.write_last_checkpoint(tmp_path, '/w/iter_8.pth')
    assert cio.read_last_checkpoint(tmp_path) == '/w/iter_8.pth'
    (tmp_path / 'last_checkpoint').write_text('  \n')
    assert cio.read_last_checkpoint(tmp_path) is None


def test_temp_files_of_live_writers_are_kept(tmp_path):
    live = tmp_path / f'.iter_4.pth.tmp-{os.getppid()}-0123abcd'
    live.write_bytes(b'x')
    assert cio.remove_stale_temp_files(tmp_path) == [] and live.exists()


def test_mmengine_save_checkpoint_through_the_atomic_backend(tmp_path, monkeypatch):
    from mmengine.fileio import get_file_backend
    from mmengine.runner.checkpoint import save_checkpoint
    assert isinstance(get_file_backend(str(tmp_path), backend_args=cio.ATOMIC_BACKEND_ARGS),
                      cio.AtomicLocalBackend)
    calls = []
    real = cio.atomic_write_bytes
    monkeypatch.setattr(cio, 'atomic_write_bytes',
                        lambda p, d, what='checkpoint': calls.append(p) or real(p, d, what))
    path = str(tmp_path / 'iter_1.pth')
    save_checkpoint({'state_dict': {'w': torch.ones(2)}}, path,
                    backend_args=cio.ATOMIC_BACKEND_ARGS)
    assert calls == [path] and torch.equal(safe_load(path)['state_dict']['w'], torch.ones(2))


# --------------------------------------------------------------------- save order
class _FakeRunner:
    """What CheckpointHook uses of a runner; saves through the atomic backend."""

    def __init__(self, work_dir: str) -> None:
        from mmengine.logging import MessageHub, MMLogger
        self.work_dir = work_dir
        self.message_hub = MessageHub.get_instance(f'ckpt_order_{id(self)}')
        self.logger = MMLogger.get_instance(f'ckpt_order_{id(self)}')
        self.iter, self.epoch, self.max_iters = 0, 0, 100

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True,
                        backend_args=None) -> None:
        from mmengine.runner.checkpoint import save_checkpoint
        assert backend_args == cio.ATOMIC_BACKEND_ARGS  # set by the hook for a local out_dir
        save_checkpoint({'meta': dict(meta or {}), 'optimizer': {}},
                        osp.join(out_dir, filename), backend_args=backend_args)


def test_hook_deletes_old_checkpoints_only_after_the_new_one_is_published(tmp_path,
                                                                          monkeypatch):
    from mtdense.engine.hooks.safe_checkpoint_hook import AtomicCheckpointHook
    runner = _FakeRunner(str(tmp_path))
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1, save_best='acc',
                                rule='greater')
    hook.before_train(runner)
    ops = []
    real_replace, real_remove = os.replace, os.remove
    monkeypatch.setattr(os, 'replace', lambda a, b: (ops.append(('publish', osp.basename(b))),
                                                     real_replace(a, b))[1])
    monkeypatch.setattr(os, 'remove', lambda p: (ops.append(('delete', osp.basename(p))),
                                                 real_remove(p))[1])
    for it, acc in ((0, 1.0), (1, 2.0)):
        runner.iter = it
        hook.after_train_iter(runner, it)
        runner.iter = it + 1  # validation runs after the iteration counter moved on
        hook.after_val_epoch(runner, {'acc': acc})
    monkeypatch.undo()

    def at(op) -> int:
        return ops.index(op)

    # interval checkpoint: iter_1 goes only once iter_2 and the pointer to it are in place
    assert at(('delete', 'iter_1.pth')) > at(('publish', 'iter_2.pth'))
    assert at(('delete', 'iter_1.pth')) > min(i for i, op in enumerate(ops)
                                              if op == ('publish', 'last_checkpoint')
                                              and i > at(('publish', 'iter_2.pth'))), ops
    # best checkpoint: the previous best goes only after the new best is written
    assert at(('delete', 'best_acc_iter_1.pth')) > at(('publish', 'best_acc_iter_2.pth'))
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == \
        ['best_acc_iter_2.pth', 'iter_2.pth']
    assert cio.read_last_checkpoint(tmp_path) == osp.join(str(tmp_path), 'iter_2.pth')
    # the kept list saved in iter_2 still names iter_1: a run killed before the deletion
    # deletes it when resumed (CheckpointHook.before_train prunes to max_keep_ckpts)
    saved = safe_load(tmp_path / 'iter_2.pth')
    assert saved['meta']['iter'] == 2
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2]
