"""Minimal reproduction of the gloo exit abort behind the 2-process training crash.

Each rank runs a few collectives on tensors created in Python (as mmengine's
distributed validation does with ``broadcast_object_list``), wraps a module in DDP
(which keeps the process group alive until the interpreter shuts down) and returns:

    python -m torch.distributed.run --nproc_per_node=2 benchmarks/gloo_exit_race.py keep
    python -m torch.distributed.run --nproc_per_node=2 benchmarks/gloo_exit_race.py finalize

``keep`` leaves the process group alive, as tools/train.py did: a gloo worker thread can
still be releasing the last work's tensors while Python finalises; the decref needs the
GIL, CPython ends such a thread with ``pthread_exit``, and the forced unwind through a
noexcept destructor calls ``std::terminate`` ("terminate called without an active
exception", exit code -6, torchrun exits 1). ``finalize`` ends with
:func:`mtdense.engine.launch.finalize_distributed` (barrier + destroy_process_group), as
the tools now do. Measured counts are in docs/reliability.md.
"""
import sys

import torch
import torch.distributed as dist


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else 'keep'
    if mode not in ('keep', 'finalize'):
        raise SystemExit(f'usage: {sys.argv[0]} keep|finalize')
    dist.init_process_group('gloo')
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 4))
    model(torch.ones(2, 4)).sum().backward()
    for _ in range(20):
        dist.all_reduce(torch.ones(1000))
        dist.broadcast_object_list([{'x': 1}] if dist.get_rank() == 0 else [None], src=0)
    if mode == 'finalize':
        from mtdense.engine.launch import finalize_distributed
        finalize_distributed()


if __name__ == '__main__':
    main()
