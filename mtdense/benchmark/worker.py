"""A long-lived benchmark worker process: runs jobs one after another.

    python -m mtdense.benchmark.worker

Protocol (:mod:`mtdense.benchmark.pool`): one JSON job per line on stdin; for each, one
JSON line ``{"id", "ok", "error", "seconds", "cpu_seconds"}`` on the process's *original*
stdout (wall and CPU time: on a shared machine the CPU time is what the job would take
alone, one thread on an idle core).
Everything the job prints (mmengine logs, tracebacks) goes to the job's ``log`` file:
file descriptors 1 and 2 are pointed at it for the job's duration, so the protocol
channel carries nothing else. Importing torch, mmengine and mmseg costs ~5 s per
process; a worker pays it once for all its jobs. A job that raises is reported and the
worker goes on; a job that kills the process is detected by the pool (end of file).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback


def _redirect(path: str) -> int:
    """Point fds 1 and 2 at ``path`` (appending); return the opened fd."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    return fd


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the profiler's
    worker processes, tools/extract_backbone.py)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    # the protocol channel is a private copy of the original stdout
    channel = os.fdopen(os.dup(1), 'w', buffering=1)
    idle_log = os.environ.get('MTDENSE_BENCH_WORKER_LOG', os.devnull)
    os.close(_redirect(idle_log))
    import torch
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
    from mtdense.benchmark.jobs import run_job
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        fd = _redirect(job.get('log') or idle_log)
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        ok, error = True, None
        try:
            print(f'[benchmark worker {os.getpid()}] job {job["id"]} started '
                  f'{time.strftime("%Y-%m-%d %H:%M:%S")}', flush=True)
            run_job(job)
        except BaseException as exc:  # reported to the pool; the worker goes on
            if isinstance(exc, KeyboardInterrupt):
                raise
            ok, error = False, f'{type(exc).__name__}: {exc}'
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.close(_redirect(idle_log))
            os.close(fd)
        channel.write(json.dumps(dict(id=job['id'], ok=ok, error=error,
                                      seconds=time.perf_counter() - t0,
                                      cpu_seconds=_cpu_seconds() - cpu0)) + '\n')
        channel.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
