"""Where the profiler's models live: :class:`LocalHost` (this process) and
:class:`WorkerHost` (a persistent worker process fed commands one by one).

Both answer the same commands — ``build`` points, ``warmup`` / ``run`` timed iterations
of a (point, mode) unit, ``memory`` of a unit, ``close`` — so the round scheduler of
:mod:`mtdense.analysis.runner` interleaves units wherever they are. A worker reads one
JSON command per line on stdin and answers one JSON line on its protocol stream (the
original stdout; anything else a library prints goes to stderr).

Usage (internal): ``python -m mtdense.analysis.worker --serve``.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import torch

__all__ = ['LocalHost', 'WorkerHost', 'WorkerError', 'FIRST_POINT_EXTRA_WARMUP']

#: Extra untimed iterations for the first unit warmed up in a process: one-time costs
#: (oneDNN primitive creation, first touch of allocator pools, lazy imports) made the
#: first point of each fresh process up to ~35 % slower than later ones.
FIRST_POINT_EXTRA_WARMUP = 2


class WorkerError(RuntimeError):
    """A command failed in a worker, or the worker process died."""


def _err(exc: BaseException) -> str:
    return f'{type(exc).__name__}: {exc}'


class LocalHost:
    """Points built and timed in this process."""

    def __init__(self, settings: Dict[str, Any], name: str = 'main') -> None:
        import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
        self.s, self.name = settings, name
        if settings.get('threads'):
            torch.set_num_threads(int(settings['threads']))
        self.points: Dict[str, Any] = {}
        self.timers: Dict[str, Any] = {}
        self._warm = False

    def describe(self) -> Dict[str, Any]:
        """Process id, torch threads and allocator variables of this host."""
        from .machine import allocator_env
        return dict(name=self.name, pid=os.getpid(), threads=torch.get_num_threads(),
                    allocator_env=allocator_env())

    def build(self, specs: List[Dict[str, Any]], count_flops: bool = True
              ) -> Dict[str, Dict[str, Any]]:
        """Build every spec; return ``{point id: info}`` (see :class:`build.Point`)."""
        from .build import Point, point_id
        from .measure import BackboneTimer
        out = {}
        for spec in specs:
            pid = point_id(spec['label'], spec.get('num_tasks'))
            point = Point(spec, self.s)
            info = point.build(count_flops=count_flops)
            info['host'] = self.describe()
            out[pid] = info
            if info['error'] is None:
                self.points[pid] = point
                mod = point.backbone_module()
                if mod is not None:
                    self.timers[pid] = BackboneTimer(mod, self.s['device'])
            _log(f"built {pid}" + (f": {info['error']}" if info['error'] else ''))
        return out

    def _unit(self, uid: str):
        pid, mode = uid.rsplit(':', 1)
        if pid not in self.points:
            raise KeyError(f'unit {uid!r}: point not built here')
        return pid, mode, self.points[pid]

    def warmup(self, uid: str, n: int) -> List[float]:
        """``n`` untimed iterations (plus the first-in-process extra); their wall seconds."""
        from .measure import timed_iterations
        pid, mode, point = self._unit(uid)
        n = int(n) + (0 if self._warm else FIRST_POINT_EXTRA_WARMUP)
        self._warm = True
        return [x['wall_s'] for x in timed_iterations(point.step(mode), self.s['device'], n)]

    def run(self, uid: str, iterations: int) -> List[Dict[str, float]]:
        """``iterations`` timed iterations: wall, CPU and backbone seconds each."""
        from .measure import timed_iterations
        pid, mode, point = self._unit(uid)
        timer = self.timers.get(pid) if mode == 'infer' else None
        return timed_iterations(point.step(mode), self.s['device'], int(iterations), timer)

    def memory(self, uid: str, iterations: int) -> Dict[str, Any]:
        """Peak memory over ``iterations`` iterations after one untimed one; with it the
        point's resident tensors (weights, buffers, optimiser state) and, on CUDA, where
        allocations are counted per tensor, ``own_peak_mb`` = resident + increase: the
        point's own peak even with other models in the process."""
        from .measure import PeakMemory
        pid, mode, point = self._unit(uid)
        step = point.step(mode)
        step()
        gc.collect()
        with PeakMemory(self.s['device']) as mem:
            for _ in range(int(iterations)):
                step()
        out = dict(peak_mb=mem.peak_mb, increase_mb=mem.increase_mb, method=mem.method,
                   resident_mb=point.resident_bytes() / 2 ** 20)
        if mem.method == 'cuda_max_allocated':
            out['own_peak_mb'] = out['resident_mb'] + mem.increase_mb
        return out

    def close(self) -> None:
        for timer in self.timers.values():
            timer.remove()
        for point in self.points.values():
            point.close()
        self.timers.clear()
        self.points.clear()
        gc.collect()
        if self.s['device'].startswith('cuda'):
            torch.cuda.empty_cache()


class WorkerHost:
    """A :class:`LocalHost` in a persistent worker process (same methods)."""

    def __init__(self, settings: Dict[str, Any], name: str,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.name = name
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'mtdense.analysis.worker', '--serve'], env=full_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._call('init', settings=settings, name=name)

    def _call(self, cmd: str, **kwargs) -> Any:
        if self.proc.poll() is not None:
            raise WorkerError(f'profile worker {self.name!r} is not running '
                              f'(exit code {self.proc.returncode})')
        try:
            self.proc.stdin.write(json.dumps(dict(cmd=cmd, **kwargs)) + '\n')
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            line = ''
            reason = _err(exc)
        else:
            reason = 'no answer'
        if not line:
            code = self.proc.wait()
            raise WorkerError(f'profile worker {self.name!r} died during {cmd!r} ({reason}, '
                              f'exit code {code}); see its messages above')
        answer = json.loads(line)
        if not answer.get('ok'):
            raise WorkerError(answer.get('error', 'unknown error'))
        return answer.get('result')

    def describe(self) -> Dict[str, Any]:
        return self._call('describe')

    def build(self, specs, count_flops: bool = True):
        return self._call('build', specs=specs, count_flops=count_flops)

    def warmup(self, uid: str, n: int):
        return self._call('warmup', uid=uid, n=n)

    def run(self, uid: str, iterations: int):
        return self._call('run', uid=uid, iterations=iterations)

    def memory(self, uid: str, iterations: int):
        return self._call('memory', uid=uid, iterations=iterations)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call('close')
            except WorkerError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _log(msg: str) -> None:
    print(f'[profile_tasks] {msg}', file=sys.stderr, flush=True)


def serve(stdin, proto) -> int:
    """Answer commands from ``stdin`` on ``proto`` until ``close`` or end of input."""
    host: Optional[LocalHost] = None
    for line in stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        name = cmd.pop('cmd')
        try:
            if name == 'init':
                host = LocalHost(cmd['settings'], cmd.get('name', 'worker'))
                result = None
            elif host is None:
                raise RuntimeError(f'command {name!r} before init')
            elif name == 'close':
                host.close()
                proto.write(json.dumps(dict(ok=True, result=None)) + '\n')
                proto.flush()
                return 0
            elif name in ('describe', 'build', 'warmup', 'run', 'memory'):
                result = getattr(host, name)(**cmd)
            else:
                raise ValueError(f'unknown command {name!r}')
            answer = dict(ok=True, result=result)
        except Exception as exc:  # reported to the coordinator, which records it
            answer = dict(ok=False, error=_err(exc))
        proto.write(json.dumps(answer) + '\n')
        proto.flush()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ['--serve']:
        print('usage: python -m mtdense.analysis.worker --serve', file=sys.stderr)
        return 2
    # the protocol gets the real stdout; fd 1 is pointed at stderr so that whatever a
    # library prints cannot corrupt it
    proto = os.fdopen(os.dup(1), 'w', buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import mtdense  # noqa: F401  (mmcv.ops stand-in first)
    return serve(sys.stdin, proto)


if __name__ == '__main__':
    sys.exit(main())
