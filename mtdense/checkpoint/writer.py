"""Crash-safe checkpoint writing: temporary file, flush + fsync, rename.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(data)``: a process
killed during the write, or a full disk, leaves a partial file under the final name
(and the error says ``[Errno 28]`` without a path). Everything here writes to a
temporary file in the destination's directory (same file system, so the rename is
atomic), flushes and fsyncs it, renames it over the destination and fsyncs the
directory. A reader therefore sees either the old file or the complete new one; a
failed write removes its temporary file and raises :class:`CheckpointWriteError`
naming the destination.

Temporary files are named ``.<name>.tmp-<pid>-<random>`` (hidden, and never matched
by a checkpoint name); a writer killed by SIGKILL cannot remove its own, so
:func:`remove_stale_temp_files` deletes them when the next run starts.
"""
from __future__ import annotations

import errno as errno_mod
import os
import os.path as osp
import re
import secrets
from typing import IO, List, Optional, Union

from mmengine.fileio.backends import LocalBackend, register_backend

__all__ = ['CheckpointWriteError', 'atomic_write_bytes', 'atomic_write_text', 'atomic_torch_save',
           'write_last_checkpoint', 'read_last_checkpoint', 'remove_stale_temp_files',
           'is_local_path', 'AtomicLocalBackend', 'ATOMIC_BACKEND', 'ATOMIC_BACKEND_ARGS']

PathLike = Union[str, os.PathLike]

#: chunk size of the writes: bounds the size of a single write system call
_CHUNK = 4 << 20
_TMP_RE = re.compile(r'^\..+\.tmp-\d+-[0-9a-f]{8}$')


class CheckpointWriteError(OSError):
    """A checkpoint (or ``last_checkpoint``) could not be written.

    Keeps ``errno`` of the underlying error (ENOSPC, EACCES, EDQUOT, ...) and names
    the destination in ``filename`` and in the message.
    """

    def __init__(self, err: OSError, path: str, what: str, detail: str) -> None:
        super().__init__(err.errno, err.strerror or str(err), path)
        self.what = what
        self.detail = detail

    def __str__(self) -> str:
        code = (f'[Errno {self.errno}] ' if self.errno is not None else '')
        return (f'could not write {self.what} {self.filename}: {code}{self.strerror}. '
                f'{self.detail}')


def is_local_path(path: PathLike) -> bool:
    """True for a path on the local file system (no ``scheme://`` prefix)."""
    return '://' not in os.fspath(path)


def _temp_path(path: str) -> str:
    head, name = osp.split(path)
    return osp.join(head, f'.{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}')


def _write_all(f: IO[bytes], data: memoryview) -> int:
    """Write ``data`` to the unbuffered file ``f`` in chunks; returns the bytes written.

    Unbuffered writes may be short; the loop retries until everything is written, so
    an error (ENOSPC) surfaces here rather than at ``close``.
    """
    done = 0
    while done < len(data):
        n = f.write(data[done:done + _CHUNK])
        if n is None:  # non-blocking file: cannot happen for regular files
            raise OSError(errno_mod.EAGAIN, 'write would block')
        done += n
    return done


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (survives a power loss, not only a crash)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some file systems (e.g. certain network mounts) refuse fsync on directories;
        # the rename has happened, only its durability on power loss is unknown.
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # reported by the caller's error; a leftover is removed at the next start


def atomic_write_bytes(path: PathLike, data: Union[bytes, bytearray, memoryview],
                       what: str = 'checkpoint') -> None:
    """Replace ``path`` by ``data`` atomically (temporary file, fsync, rename).

    On any error the temporary file is removed, ``path`` keeps its previous content
    (or stays absent) and :class:`CheckpointWriteError` names ``path``.
    """
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    view = memoryview(data).cast('B')
    tmp = _temp_path(path)
    written = 0  # bytes in the temporary file, for the error message
    stage = 'creating the directory'
    try:
        os.makedirs(directory, exist_ok=True)
        stage = 'creating the temporary file'
        # O_EXCL: never write through someone else's file; 0o666 & ~umask gives the
        # permissions a plain open() would (mkstemp would make it 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0),
                     0o666)
        with open(fd, 'wb', buffering=0) as f:
            stage = 'writing'
            _write_all(f, view)
            stage = 'syncing to disk'
            os.fsync(f.fileno())
        stage = 'renaming the temporary file'
        os.replace(tmp, path)
    except OSError as e:
        try:  # what reached the file, also when the error came in the middle of a write
            written = os.path.getsize(tmp)
        except OSError:
            pass
        _remove_quietly(tmp)
        raise CheckpointWriteError(
            e, path, what,
            f'Failed while {stage} ({written} of {len(view)} bytes written to {tmp}, which was '
            f'removed); {path} was not changed and existing checkpoints are kept.') from e
    except BaseException:
        _remove_quietly(tmp)  # KeyboardInterrupt, serialisation errors, ...
        raise
    _fsync_dir(directory)


def atomic_write_text(path: PathLike, text: str, what: str = 'file',
                      encoding: str = 'utf-8') -> None:
    """:func:`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding), what=what)


def atomic_torch_save(obj: object, path: PathLike) -> None:
    """``torch.save(obj, path)``, atomically (serialised in memory first, as mmengine does)."""
    import io

    import torch
    with io.BytesIO() as buf:
        torch.save(obj, buf)
        atomic_write_bytes(path, buf.getbuffer())


def write_last_checkpoint(work_dir: PathLike, ckpt_path: str) -> None:
    """Point ``work_dir/last_checkpoint`` (mmengine's resume pointer) at ``ckpt_path``."""
    atomic_write_text(osp.join(os.fspath(work_dir), 'last_checkpoint'), ckpt_path,
                      what='resume pointer')


def read_last_checkpoint(work_dir: PathLike) -> Optional[str]:
    """The path ``work_dir/last_checkpoint`` names, or None if the file is absent / empty."""
    path = osp.join(os.fspath(work_dir), 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read().strip()
    return text or None


def remove_stale_temp_files(directory: PathLike) -> List[str]:
    """Delete temporary files left by writers killed mid-save; returns their paths.

    Only names this module creates (``.<name>.tmp-<pid>-<8 hex digits>``) are touched,
    and only if their process is gone (the pid is checked on this machine; a writer on
    another host of a shared file system would be a second run in the same work dir,
    which mmengine does not support anyway).
    """
    directory = os.fspath(directory)
    removed: List[str] = []
    if not osp.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        if not _TMP_RE.match(name):
            continue
        pid = int(name.rsplit('-', 2)[1])
        if pid != os.getpid() and _pid_alive(pid):
            continue
        path = osp.join(directory, name)
        try:
            os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


#: name of the mmengine file backend below (``backend_args=dict(backend=ATOMIC_BACKEND)``)
ATOMIC_BACKEND = 'mtdense_atomic_local'
ATOMIC_BACKEND_ARGS = dict(backend=ATOMIC_BACKEND)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``.

    Registered under :data:`ATOMIC_BACKEND` (not as the default for local paths, so
    only the checkpoint saves that ask for it change). mmengine's
    ``save_checkpoint`` serialises to memory and calls ``put``, so passing
    ``backend_args=ATOMIC_BACKEND_ARGS`` makes its writes atomic without copying it.
    """

    def put(self, obj: bytes, filepath: PathLike) -> None:
        atomic_write_bytes(filepath, obj, what='checkpoint')

    def put_text(self, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, what='file', encoding=encoding)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
