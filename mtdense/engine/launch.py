"""Launcher helpers shared by tools/train.py and tools/test.py.

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally, so a
pytorch/slurm launch on a CPU-only machine fails before training starts. When CUDA is
unavailable we initialise the process group ourselves with gloo (mmengine then skips
its own initialisation) and build DDP without ``device_ids``, as CPU modules require.

:func:`finalize_distributed` ends a successful distributed run: all ranks meet at a
barrier, then the process group is destroyed, before the interpreter shuts down. Left
alive, gloo's worker threads may still be releasing the last collective's tensors
(e.g. mmengine's validation ``broadcast_object_list``) while Python finalises; taking
the GIL then makes CPython end the thread with ``pthread_exit``, whose forced unwind
through a noexcept destructor calls ``std::terminate``: "terminate called without an
active exception" and SIGABRT (see docs/reliability.md).
"""
from __future__ import annotations

import os
import subprocess
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config

__all__ = ['prepare_launcher', 'init_cpu_distributed', 'launch_world_size',
           'finalize_distributed']


def launch_world_size(launcher: str) -> int:
    """Number of processes of this launch (before or after the process group exists)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    if launcher == 'pytorch':
        return int(os.environ.get('WORLD_SIZE', 1))
    if launcher == 'slurm':
        return int(os.environ.get('SLURM_NTASKS', 1))
    if launcher == 'mpi':
        return int(os.environ.get('OMPI_COMM_WORLD_SIZE', 1))
    return 1


def _setup_slurm_env(port: Optional[int] = None) -> None:
    """Derive torch.distributed env variables from SLURM's (as mmengine does)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ.setdefault('MASTER_PORT', str(port or 29500))
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)


def init_cpu_distributed(launcher: str, timeout_s: int = 600) -> None:
    """Initialise a gloo process group for a CPU-only pytorch or slurm launch."""
    if dist.is_available() and dist.is_initialized():
        return
    if launcher == 'slurm':
        _setup_slurm_env()
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise RuntimeError(f'launcher={launcher!r} needs the environment variable {key} '
                               f'(set by torchrun / srun); it is missing')
    from datetime import timedelta
    dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout_s))


def prepare_launcher(cfg: Config, launcher: str) -> Config:
    """Set ``cfg.launcher`` and make distributed launches work on CPU-only machines."""
    if launcher not in ('none', 'pytorch', 'slurm', 'mpi'):
        raise ValueError(f'--launcher must be one of none|pytorch|slurm|mpi, got {launcher!r}')
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return cfg
    if launcher == 'mpi':
        raise RuntimeError('the mpi launcher needs CUDA here; use --launcher pytorch on CPU')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    init_cpu_distributed(launcher)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None  # CPU modules: DDP refuses device ids
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    return cfg


def finalize_distributed() -> None:
    """Barrier, then ``destroy_process_group`` (no-op without a process group).

    Call once at the end of a run that succeeded on every rank (a rank that failed
    would leave the others waiting at the barrier until its timeout). The barrier
    makes every rank finish its last collective, so no gloo work that holds Python
    tensors is still pending or being released when the interpreter finalises, and
    no rank tears its group down while a peer still talks to it.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
