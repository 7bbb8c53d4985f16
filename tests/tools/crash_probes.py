"""A hook the checkpoint crash tests inject into training subprocesses (``custom_imports``).

Not part of the package. It ends the process abruptly in the middle of one checkpoint
save, at a chosen point, without any cleanup (like ``kill -9`` or a node failure), or
makes the kernel refuse the write as a full disk would. The points do not depend on how
the save is implemented, so the same test runs against mmengine's own writer:

* ``byte:N`` -- ``RLIMIT_FSIZE = N`` with ``SIGXFSZ`` at its default action: the
  kernel terminates the process when a file write reaches byte N. The first file
  written after the hook is the checkpoint (serialised in memory first), so it is
  killed N bytes into the checkpoint.
* ``before:FUNC:K`` / ``after:FUNC:K`` -- SIGKILL just before / after the K-th call of
  ``os.FUNC`` (``replace``, ``remove``) made after the hook, e.g. the rename of the new
  checkpoint, of ``last_checkpoint``, or the deletion of the outdated checkpoint.
* ``after:FUNC:K+byte:N`` -- after that call, arm ``byte:N`` (e.g. a kill in the
  middle of writing ``last_checkpoint``).
* ``efbig:N`` -- ``RLIMIT_FSIZE = N`` with ``SIGXFSZ`` ignored (Python's default):
  writes past byte N fail with a real ``EFBIG`` ("File too large") from the kernel.
"""
from __future__ import annotations

import functools
import os
import resource
import signal

from mmengine.hooks import Hook

from mtdense.registry import HOOKS


def _limit_file_size(n: int, kill: bool) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from SIGXFSZ
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL if kill else signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, resource.RLIM_INFINITY))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    kind, _, rest = point.partition(':')
    if kind == 'byte':
        _limit_file_size(int(rest), kill=True)
    elif kind == 'efbig':
        _limit_file_size(int(rest), kill=False)
    elif kind in ('before', 'after'):
        spec, _, then = rest.partition('+')
        func, k = spec.split(':')
        real = getattr(os, func)
        calls = [0]

        @functools.wraps(real)
        def probe(*args, **kwargs):
            calls[0] += 1
            if calls[0] == int(k) and kind == 'before':
                _die()
            result = real(*args, **kwargs)
            if calls[0] == int(k):
                if then:
                    _arm(then)
                else:
                    _die()
            return result

        setattr(os, func, probe)
    else:
        raise ValueError(f'unknown crash point {point!r}')


@HOOKS.register_module()
class CrashDuringSaveHook(Hook):
    """Arm crash ``point`` (see the module docstring) just before the checkpoint of
    iteration ``iter`` is serialised and written."""

    priority = 'LOWEST'  # after SafeCheckpointHook edited the checkpoint

    def __init__(self, iter: int, point: str) -> None:
        self.iter = int(iter)
        self.point = str(point)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint.get('meta', {}).get('iter') == self.iter and 'optimizer' in checkpoint:
            for handler in runner.logger.handlers:
                handler.flush()
            _arm(self.point)


@HOOKS.register_module()
class RecordProcessGroupAtExitHook(Hook):
    """Write ``work_dir/pg_at_exit_rank{r}.json`` from an ``atexit`` handler: whether the
    process group still existed when the tool returned (just before the interpreter
    finalises) and which native threads were alive."""

    def before_run(self, runner) -> None:
        import atexit
        import json

        import torch.distributed as dist
        path = os.path.join(runner.work_dir, f'pg_at_exit_rank{runner.rank}.json')

        def record() -> None:
            threads = []
            for tid in os.listdir('/proc/self/task'):
                try:
                    with open(f'/proc/self/task/{tid}/comm') as f:
                        threads.append(f.read().strip())
                except OSError:
                    pass
            with open(path, 'w') as f:
                json.dump(dict(initialized=dist.is_initialized(), threads=sorted(threads)), f)

        atexit.register(record)
