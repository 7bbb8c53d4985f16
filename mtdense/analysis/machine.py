"""What the numbers were measured on: CPU, memory, versions, device, allocator, load."""
from __future__ import annotations

import os
import platform
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import torch

__all__ = ['machine_info', 'allocator_env', 'loadavg', 'mem_available_gb']


def loadavg() -> Optional[List[float]]:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def allocator_env() -> Dict[str, str]:
    """The environment variables that change this process's memory allocator."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith('MALLOC_') or k in ('LD_PRELOAD', 'GLIBC_TUNABLES')}


def _meminfo_gb(field: str) -> Optional[float]:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def mem_available_gb() -> Optional[float]:
    """``MemAvailable`` of ``/proc/meminfo`` in GiB (None elsewhere)."""
    return _meminfo_gb('MemAvailable')


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


# ISA extensions that change CPU kernel speed a lot (bf16 autocast is fast only with
# avx512_bf16 / amx_bf16): recorded so results from different machines can be told apart
_CPU_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile', 'neon',
              'sve')


def _cpu_flags() -> List[str]:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith(('flags', 'features')):
                    have = set(line.split(':', 1)[1].split())
                    return [flag for flag in _CPU_FLAGS if flag in have]
    except OSError:
        pass
    return []


def _thp() -> Optional[str]:
    """Transparent huge pages policy (it changes how often fresh buffers page-fault)."""
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            text = f.read()
        return text[text.index('[') + 1:text.index(']')]
    except (OSError, ValueError):
        return None


def machine_info(device: str = 'cpu') -> Dict[str, Any]:
    """CPU model and ISA flags, cores, memory, versions, device name, allocator, load."""
    info: Dict[str, Any] = OrderedDict()
    info['hostname'] = platform.node()
    info['platform'] = platform.platform()
    info['python'] = platform.python_version()
    info['cpu_model'] = _cpu_model()
    info['cpu_flags'] = _cpu_flags()
    info['cpu_count_logical'] = os.cpu_count()
    try:
        info['cpu_affinity'] = len(os.sched_getaffinity(0))
    except AttributeError:
        info['cpu_affinity'] = None
    info['torch_threads'] = torch.get_num_threads()
    info['mem_total_gb'] = _meminfo_gb('MemTotal')
    info['mem_available_gb'] = mem_available_gb()
    info['transparent_hugepages'] = _thp()
    info['allocator_env'] = allocator_env()
    info['torch'] = torch.__version__
    try:
        import mmengine
        info['mmengine'] = mmengine.__version__
    except ImportError:
        info['mmengine'] = None
    try:
        import mmseg
        info['mmseg'] = mmseg.__version__
    except Exception:
        info['mmseg'] = None
    info['cuda_available'] = torch.cuda.is_available()
    info['device'] = device
    if device.startswith('cuda') and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(idx)
        info['device_name'] = torch.cuda.get_device_name(idx)
        info['cuda'] = torch.version.cuda
        info['cudnn'] = torch.backends.cudnn.version()
        info['device_memory_gb'] = round(props.total_memory / 1024 ** 3, 1)
        info['device_capability'] = f'{props.major}.{props.minor}'
        info['cuda_device_count'] = torch.cuda.device_count()
    else:
        info['device_name'] = info['cpu_model']
    info['loadavg'] = loadavg()
    return info
