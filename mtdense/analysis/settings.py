"""Settings of a task-scaling profiling run (:class:`ProfileSettings`) and the constants
the other modules share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

__all__ = ['ProfileSettings', 'DEFAULT_CONFIGS', 'default_configs', 'SCHEMA_VERSION', 'BACKBONE_ALONE', 'MODES',
           'TIMED_MODES', 'SCHEDULES', 'ISOLATION', 'MEMORY_MODES', 'CPU_ALLOCS',
           'CACHED_ALLOC_ENV', 'INFER_FORWARDS', 'OPTIMIZERS', 'config_label']

#: 2: interleaved rounds (``rounds_ms``, ``cpu``, ``loadavg_1m`` per record; ``schedule``,
#: ``load`` and ``summary.paired`` in the report). Version 1 reports can still be replotted.
SCHEMA_VERSION = 2

#: Configs compared by default (label, path relative to the repository root).
DEFAULT_CONFIGS: List[tuple] = [
    ('VMT', 'configs/_base_/models/swin_t_mmseg_vmt.py'),
    ('VMT-Lite', 'configs/_base_/models/swin_t_mmseg_vmt_lite.py'),
    ('PerTaskAdapter', 'configs/_base_/models/swin_t_mmseg_per_task_adapter.py'),
    ('PerTaskLoRA', 'configs/_base_/models/swin_t_mmseg_per_task_lora.py'),
    ('MTLoRA', 'configs/_base_/models/swin_t_mmseg_mtlora.py'),
    ('FullFT', 'configs/_base_/models/swin_t_mmseg_full_ft.py'),
]
BACKBONE_ALONE = 'backbone_alone'
MODES = ('infer', 'train', 'count')  # 'count': FLOPs and parameters only, nothing timed
TIMED_MODES = ('infer', 'train')
SCHEDULES = ('interleaved', 'sequential')
ISOLATION = ('auto', 'none', 'config', 'point')
MEMORY_MODES = ('isolated', 'shared', 'off')
CPU_ALLOCS = ('system', 'cached')
# glibc: serve large blocks from the heap and never trim it (fixed thresholds also turn
# off the dynamic mmap threshold, which stops at 32 MB)
CACHED_ALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': str(1 << 40), 'MALLOC_TRIM_THRESHOLD_': str(1 << 40)}
INFER_FORWARDS = ('tensor', 'predict')
#: AdamW implementations of the training step: 'fused' (one kernel for all parameters),
#: 'foreach' (multi-tensor ops), 'loop' (one Python iteration per parameter tensor, the
#: torch default on CPU; its cost grows with the number of parameter tensors, i.e. with T)
OPTIMIZERS = ('fused', 'foreach', 'loop')


@dataclass
class ProfileSettings:
    """Everything one profiling run needs (also recorded in the JSON output).

    Attributes:
        configs: ``[(label, path)]`` of mmengine configs with a ``model`` dict.
        num_tasks: task counts T to measure.
        img_size: square input size.
        batch_size: images per iteration.
        modes: subset of ``('infer', 'train', 'count')``; 'count' records FLOPs and
            parameters without timing anything.
        device: 'cpu' | 'cuda' | 'cuda:N'.
        num_classes: semantic classes for tasks whose width comes from the dataset.
        task_pool: tasks cloned to reach T (None: the config's ``model.tasks``).
        schedule: 'interleaved' (default): after warm-up every (point, mode) runs
            ``round_iters`` iterations per round, in a new shuffled order each round, so
            a change of machine load hits all points alike and same-round ratios cancel
            it; 'sequential': each point's iterations back to back, one point after the
            other (what earlier versions did; load drift between points biases ratios).
        warmup: untimed iterations per (point, mode) before the rounds (the first one of
            each process gets ``FIRST_POINT_EXTRA_WARMUP`` more).
        repeats: rounds (timed iterations per point = ``repeats * round_iters``).
        round_iters: timed iterations per point and round.
        max_seconds: stop after the round in which the timed total reaches
            ``max_seconds`` per (point, mode) on average (at least ``min_repeats``
            rounds); None: no limit.
        min_repeats: see ``max_seconds``.
        isolate: where the models live: 'none' (all in this process), 'config' (a
            persistent worker process per config, fed round by round), 'point' (one per
            (config, T)), 'auto' (default: 'none' when the models fit in memory and the
            allocator allows it, else 'config').
        memory: peak memory: 'isolated' (default; after the rounds, every point once more
            in a fresh process of its own: peak RSS / CUDA peak of that model alone;
            with ``isolate='point'`` the timing worker measures it before the rounds),
            'shared' (in the timing process, where other points' models are resident:
            only ``increase_mb`` is that point's), 'off'.
        memory_iters: iterations measured for memory (after one warm-up iteration).
        flops: count FLOPs (one counted forward per (config, T)).
        backbone_alone: also measure the bare backbone of the first config.
        breakdown: time ``model.backbone`` inside the inference iterations.
        infer_forward: 'tensor' (backbone + heads + upsampling on a normalised batch) |
            'predict' (``test_step``: preprocessing + prediction post-processing at the
            original size).
        optimizer: AdamW implementation of the training step (:data:`OPTIMIZERS`).
        channels_last / compile / bf16: execution options (bf16 = autocast).
        threads: ``torch.set_num_threads`` in the measuring processes (None: default).
        cpu_alloc: 'system' (the default glibc malloc) | 'cached' (worker processes get
            ``CACHED_ALLOC_ENV``: glibc keeps freed large blocks instead of returning them
            to the OS, the effect of jemalloc/tcmalloc). Needs worker processes.
        seed: weights, random inputs/targets and the round order.
        cfg_options: overrides merged into every config (``--cfg-options``).
    """
    configs: List[tuple] = field(default_factory=lambda: list(DEFAULT_CONFIGS))
    num_tasks: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    img_size: int = 448
    batch_size: int = 1
    modes: List[str] = field(default_factory=lambda: ['infer'])
    device: str = 'cpu'
    num_classes: int = 21
    task_pool: Optional[List[str]] = None
    schedule: str = 'interleaved'
    warmup: int = 2
    repeats: int = 10
    round_iters: int = 1
    max_seconds: Optional[float] = None
    min_repeats: int = 3
    isolate: str = 'auto'
    memory: str = 'isolated'
    memory_iters: int = 2
    flops: bool = True
    backbone_alone: bool = True
    breakdown: bool = True
    infer_forward: str = 'tensor'
    optimizer: str = 'fused'
    channels_last: bool = False
    compile: bool = False
    bf16: bool = False
    threads: Optional[int] = None
    cpu_alloc: str = 'system'
    seed: int = 0
    cfg_options: Optional[Dict[str, Any]] = None

    def validate(self) -> 'ProfileSettings':
        """Check every field; normalise ``num_tasks`` (sorted, unique) and ``configs``."""
        if not self.configs:
            raise ValueError('ProfileSettings: no configs given')
        self.configs = [tuple(c) for c in self.configs]
        labels = [lab for lab, _ in self.configs]
        if len(set(labels)) != len(labels):
            raise ValueError(f'ProfileSettings: config labels must be unique, got {labels}')
        if BACKBONE_ALONE in labels:
            raise ValueError(f'ProfileSettings: {BACKBONE_ALONE!r} is reserved for the bare '
                             'backbone; rename that config')
        for lab, path in self.configs:
            if not Path(path).is_file():
                raise FileNotFoundError(f'ProfileSettings: config {lab!r}: file {path!r} not found')
        if not self.num_tasks or any(int(t) < 1 for t in self.num_tasks):
            raise ValueError(f'ProfileSettings: num_tasks must be positive ints, '
                             f'got {self.num_tasks}')
        self.num_tasks = sorted(set(int(t) for t in self.num_tasks))
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad:
            raise ValueError(f'ProfileSettings: modes must be a non-empty subset of {MODES}, '
                             f'got {self.modes}')
        self.modes = list(dict.fromkeys(self.modes))
        if self.img_size < 32 or self.batch_size < 1:
            raise ValueError(f'ProfileSettings: img_size must be >= 32 and batch_size >= 1, got '
                             f'{self.img_size} and {self.batch_size}')
        if (self.warmup < 0 or self.repeats < 1 or self.min_repeats < 1 or self.round_iters < 1
                or self.memory_iters < 1):
            raise ValueError('ProfileSettings: need warmup >= 0 and repeats, min_repeats, '
                             f'round_iters, memory_iters >= 1; got {self.warmup}, {self.repeats}, '
                             f'{self.min_repeats}, {self.round_iters}, {self.memory_iters}')
        for name, value, allowed in (('schedule', self.schedule, SCHEDULES),
                                     ('isolate', self.isolate, ISOLATION),
                                     ('memory', self.memory, MEMORY_MODES),
                                     ('cpu_alloc', self.cpu_alloc, CPU_ALLOCS),
                                     ('infer_forward', self.infer_forward, INFER_FORWARDS),
                                     ('optimizer', self.optimizer, OPTIMIZERS)):
            if value not in allowed:
                raise ValueError(f'ProfileSettings: {name} must be one of {allowed}, '
                                 f'got {value!r}')
        if self.cpu_alloc == 'cached' and self.isolate == 'none':
            raise ValueError("ProfileSettings: cpu_alloc='cached' sets the allocator of the worker "
                             "processes at their start; it cannot apply with isolate='none'")
        if not (self.device == 'cpu' or self.device.startswith('cuda')):
            raise ValueError("ProfileSettings: device must be 'cpu' or 'cuda[:N]', "
                             f'got {self.device!r}')
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise RuntimeError(f'ProfileSettings: device {self.device!r} requested but CUDA is not '
                               'available')
        return self

    @property
    def timed_modes(self) -> List[str]:
        """The modes that are timed (``infer``, ``train``), in the given order."""
        return [m for m in self.modes if m in TIMED_MODES]


def default_configs(configs=None) -> List[tuple]:
    """``(label, absolute path)`` of :data:`DEFAULT_CONFIGS` (or of ``configs``, paths
    under ``configs/``), in this checkout's or the installed package's config zoo."""
    from mtdense.utils.config_names import configs_root
    root = Path(configs_root() or 'configs')
    return [(lab, str(root / Path(path).relative_to('configs')))
            for lab, path in (configs or DEFAULT_CONFIGS)]


def config_label(path: str) -> str:
    """Label of a user config: its file stem without the common ``swin_t_mmseg_`` prefix."""
    stem = Path(path).stem
    return stem[len('swin_t_mmseg_'):] if stem.startswith('swin_t_mmseg_') else stem
