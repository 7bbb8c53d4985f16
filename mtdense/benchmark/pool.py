"""A pool of long-lived worker processes (:mod:`mtdense.benchmark.worker`).

Each worker runs one job at a time with one thread (``OMP_NUM_THREADS=1``), so on the
2-core machine two workers train side by side without oversubscribing. Workers start
lazily; one that dies while running a job (killed, out of memory, segfault) is reported
as that job's failure and replaced by a fresh process for the next job.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import mtdense

__all__ = ['WorkerPool', 'JobDone', 'worker_env']

_SRC_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(mtdense.__file__)))


def worker_env(threads: int = 1) -> Dict[str, str]:
    """Environment of a worker: one thread, and this process's mtdense first on the path
    (a worktree must not pick up another checkout's editable install)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONUNBUFFERED='1', PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_SRC_ROOT, env.get('PYTHONPATH')) if p)
    return env


@dataclass
class JobDone:
    """What the pool reports for a finished job."""
    job: Dict[str, Any]
    ok: bool
    error: Optional[str]
    seconds: float
    cpu_seconds: Optional[float] = None


class _Worker:
    def __init__(self, index: int, env: Dict[str, str], log: str) -> None:
        self.index = index
        env = dict(env, MTDENSE_BENCH_WORKER_LOG=log)
        self.proc = subprocess.Popen([sys.executable, '-m', 'mtdense.benchmark.worker'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     text=True, bufsize=1)
        self.job: Optional[Dict[str, Any]] = None

    def send(self, job: Dict[str, Any]) -> None:
        self.job = job
        self.proc.stdin.write(json.dumps(job) + '\n')
        self.proc.stdin.flush()


class WorkerPool:
    """``submit`` jobs while :attr:`idle` > 0; ``wait`` for the next finished one."""

    def __init__(self, size: int, log_dir: str, threads: int = 1) -> None:
        if size < 1:
            raise ValueError(f'WorkerPool: size must be >= 1, got {size}')
        self.size = size
        self.log_dir = log_dir
        self.env = worker_env(threads)
        self._workers: List[Optional[_Worker]] = [None] * size
        self._sel = selectors.DefaultSelector()
        self._started = 0

    @property
    def idle(self) -> int:
        return sum(1 for w in self._workers if w is None or w.job is None)

    @property
    def busy(self) -> int:
        return self.size - self.idle

    def submit(self, job: Dict[str, Any]) -> None:
        for i, w in enumerate(self._workers):
            if w is None:
                os.makedirs(self.log_dir, exist_ok=True)
                w = _Worker(i, self.env, os.path.join(self.log_dir,
                                                      f'worker{i}_{self._started}.log'))
                self._started += 1
                self._workers[i] = w
                self._sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            if w.job is None:
                w.send(job)
                return
        raise RuntimeError('WorkerPool.submit: no idle worker')

    def wait(self) -> JobDone:
        """Block until a running job finishes (or its worker dies)."""
        if self.busy == 0:
            raise RuntimeError('WorkerPool.wait: no job is running')
        while True:
            for key, _ in self._sel.select():
                w: _Worker = key.data
                line = w.proc.stdout.readline()
                job = w.job
                if not line:  # the worker died
                    code = w.proc.wait()
                    self._sel.unregister(w.proc.stdout)
                    self._workers[w.index] = None
                    if job is None:
                        continue
                    return JobDone(job, False, f'worker process exited with code {code} '
                                   f'while running the job (see {job.get("log")})', 0.0)
                msg = json.loads(line)
                if job is None or msg.get('id') != job['id']:
                    raise RuntimeError(f'worker {w.index}: answer {msg} does not match its job '
                                       f'{job and job["id"]}')
                w.job = None
                return JobDone(job, bool(msg['ok']), msg.get('error'), float(msg['seconds']),
                               msg.get('cpu_seconds'))

    def close(self, kill: bool = False) -> None:
        """End the workers: close their input (they exit after the current job), or
        terminate them (``kill=True``, e.g. on Ctrl-C)."""
        for i, w in enumerate(self._workers):
            if w is None:
                continue
            try:
                if kill:
                    w.proc.terminate()
                w.proc.stdin.close()
            except OSError:
                pass
            try:
                w.proc.wait(timeout=None if not kill else 30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            try:
                self._sel.unregister(w.proc.stdout)
            except (KeyError, ValueError):
                pass
            w.proc.stdout.close()
            self._workers[i] = None

    def __enter__(self) -> 'WorkerPool':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None)
