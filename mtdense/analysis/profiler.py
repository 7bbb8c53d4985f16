"""Cost of multi-task dense models versus the number of tasks T.

For every model config and every T the profiler builds the model with T tasks
(extra tasks are clones of the config's tasks: ``semseg_2``, ``normals_3``, ...,
understood by :func:`mtdense.tasks.get_task_spec`), and measures

* latency (median and spread over timed repeats after warm-up) and throughput
  of inference (``mode='tensor'`` forward under ``torch.inference_mode``, or the
  full ``test_step`` with ``infer_forward='predict'``) and/or of one training
  step (data preprocessing, forward, losses, backward, AdamW step through
  mmengine's ``BaseModel.train_step`` on random targets in the task formats);
* the time spent in the backbone (+ PETL method + neck) during inference, read
  by forward hooks around ``model.backbone`` in the same timed iterations;
* peak memory (see :mod:`mtdense.analysis.measure`);
* FLOPs of one image (backbone side and heads separately, see
  :mod:`mtdense.analysis.flops`);
* parameters (total, trainable, per task).

A reference point, the *backbone alone* (the config's wrapped backbone, frozen,
no adapter, no heads, one pass), is measured once per run: no multi-task model
can be cheaper than it.

Each config runs in a fresh worker process by default (``isolate='config'``),
so peak-RSS figures of one config cannot be inflated by another; see
:class:`ProfileSettings`.
"""
from __future__ import annotations

import copy
import csv
import datetime as _dt
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from .flops import count_executed_flops, count_model_flops
from .measure import PeakMemory, latency_stats, time_iterations

__all__ = ['ProfileSettings', 'DEFAULT_CONFIGS', 'SCHEMA_VERSION', 'make_task_list', 'profile',
           'run_job', 'summarize', 'write_json', 'write_csv', 'machine_info', 'config_label']

SCHEMA_VERSION = 1

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
ISOLATION = ('none', 'config', 'point')
CPU_ALLOCS = ('system', 'cached')
# glibc: serve large blocks from the heap and never trim it (fixed thresholds also turn
# off the dynamic mmap threshold, which stops at 32 MB)
CACHED_ALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': str(1 << 40), 'MALLOC_TRIM_THRESHOLD_': str(1 << 40)}
INFER_FORWARDS = ('tensor', 'predict')


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
        warmup: untimed iterations per measurement (the first measurement of each
            process gets ``FIRST_POINT_EXTRA_WARMUP`` more; ``warmup_ms`` in each
            record lists the iterations actually run).
        repeats: timed iterations per measurement (at most).
        max_seconds: stop timing a measurement after this many timed seconds
            (at least ``min_repeats`` iterations run); None: no limit.
        min_repeats: see ``max_seconds``.
        flops: count FLOPs (one traced forward per (config, T)).
        backbone_alone: also measure the bare backbone of the first config.
        breakdown: time ``model.backbone`` inside the inference iterations.
        infer_forward: 'tensor' (backbone + heads + upsampling on a normalised
            batch) | 'predict' (``test_step``: preprocessing + prediction
            post-processing at the original size).
        channels_last / compile / bf16: execution options (bf16 = autocast).
        threads: ``torch.set_num_threads`` in the measuring process (None: default).
        cpu_alloc: 'system' (the worker inherits this process's allocator settings) |
            'cached' (glibc keeps freed large blocks instead of returning them to the
            OS, so big activations are not page-faulted in again on every call; the
            effect of jemalloc/tcmalloc, as commonly advised for PyTorch on CPU).
            Needs worker processes (``isolate`` not 'none').
        isolate: 'config' (one fresh process per config), 'point' (per
            (config, T)), 'none' (in this process).
        seed: for weights and random inputs/targets.
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
    warmup: int = 2
    repeats: int = 10
    max_seconds: Optional[float] = None
    min_repeats: int = 3
    flops: bool = True
    backbone_alone: bool = True
    breakdown: bool = True
    infer_forward: str = 'tensor'
    channels_last: bool = False
    compile: bool = False
    bf16: bool = False
    threads: Optional[int] = None
    cpu_alloc: str = 'system'
    isolate: str = 'config'
    seed: int = 0
    cfg_options: Optional[Dict[str, Any]] = None

    def validate(self) -> 'ProfileSettings':
        if not self.configs:
            raise ValueError('ProfileSettings: no configs given')
        labels = [lab for lab, _ in self.configs]
        if len(set(labels)) != len(labels):
            raise ValueError(f'ProfileSettings: config labels must be unique, got {labels}')
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
        if self.img_size < 32 or self.batch_size < 1:
            raise ValueError(f'ProfileSettings: img_size must be >= 32 and batch_size >= 1, got '
                             f'{self.img_size} and {self.batch_size}')
        if self.warmup < 0 or self.repeats < 1 or self.min_repeats < 1:
            raise ValueError(f'ProfileSettings: need warmup >= 0, repeats >= 1, min_repeats >= 1; '
                             f'got {self.warmup}, {self.repeats}, {self.min_repeats}')
        if self.isolate not in ISOLATION:
            raise ValueError(f'ProfileSettings: isolate must be one of {ISOLATION}, '
                             f'got {self.isolate!r}')
        if self.cpu_alloc not in CPU_ALLOCS:
            raise ValueError(f'ProfileSettings: cpu_alloc must be one of {CPU_ALLOCS}, '
                             f'got {self.cpu_alloc!r}')
        if self.cpu_alloc == 'cached' and self.isolate == 'none':
            raise ValueError("ProfileSettings: cpu_alloc='cached' sets the allocator of the worker "
                             "processes at their start; it cannot apply with isolate='none'")
        if self.infer_forward not in INFER_FORWARDS:
            raise ValueError(f'ProfileSettings: infer_forward must be one of {INFER_FORWARDS}, '
                             f'got {self.infer_forward!r}')
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise RuntimeError(f'ProfileSettings: device {self.device!r} requested but CUDA is not '
                               'available')
        if not (self.device == 'cpu' or self.device.startswith('cuda')):
            raise ValueError("ProfileSettings: device must be 'cpu' or 'cuda[:N]', "
                             f'got {self.device!r}')
        return self


def config_label(path: str) -> str:
    """Label of a user config: its file stem without the common ``swin_t_mmseg_`` prefix."""
    stem = Path(path).stem
    return stem[len('swin_t_mmseg_'):] if stem.startswith('swin_t_mmseg_') else stem


# --------------------------------------------------------------------------- building
def make_task_list(pool: Sequence[str], num_tasks: int) -> List[str]:
    """The first ``num_tasks`` tasks cycling through ``pool``; repeats get ``_2``, ``_3``...

    ``make_task_list(['semseg', 'normals'], 5)`` ->
    ``['semseg', 'normals', 'semseg_2', 'normals_2', 'semseg_3']``.
    """
    from mtdense.tasks import check_tasks
    pool = check_tasks(pool, where='task pool')
    if num_tasks < 1:
        raise ValueError(f'make_task_list: num_tasks must be >= 1, got {num_tasks}')
    tasks = []
    for i in range(num_tasks):
        base, k = pool[i % len(pool)], i // len(pool)
        tasks.append(base if k == 0 else f'{base}_{k + 1}')
    return check_tasks(tasks, where='cloned task list')


def load_model_cfg(path: str, num_classes: int,
                   cfg_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``model`` dict of config ``path`` with ``num_classes`` filled in."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'{path}: config has no `model` dict')
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if model.get('num_classes') is None:
        model['num_classes'] = int(num_classes)
    if not model.get('tasks'):
        raise KeyError(f'{path}: model.tasks is empty or missing; the profiler clones these tasks')
    return model


def build_model(model_cfg: Dict[str, Any], tasks: Sequence[str], seed: int) -> torch.nn.Module:
    """Build a ``MultiTaskDenseModel`` for ``tasks`` from a model dict."""
    from mtdense.registry import MODELS
    from mtdense.utils import register_all_modules
    register_all_modules()
    cfg = copy.deepcopy(model_cfg)
    cfg['tasks'] = list(tasks)
    if isinstance(cfg.get('backbone'), dict) and 'tasks' in cfg['backbone']:
        cfg['backbone']['tasks'] = list(tasks)
    torch.manual_seed(seed)
    # no model.init_weights(): weights do not change the cost, and AdaptedBackbone
    # already initialised the backbone and the method at build time
    return MODELS.build(cfg)


def build_backbone_alone(model_cfg: Dict[str, Any], seed: int) -> torch.nn.Module:
    """The wrapped backbone of an ``AdaptedBackbone`` / ``ConvMultiTaskBackbone`` config,
    frozen, without any method."""
    from mtdense.registry import MODELS
    from mtdense.utils import register_all_modules
    register_all_modules()
    bb = model_cfg.get('backbone', {})
    kind = bb.get('type') if isinstance(bb, dict) else None
    torch.manual_seed(seed)
    if kind == 'ConvMultiTaskBackbone' and isinstance(bb.get('backbone'), dict):
        import timm
        cfg = dict(bb['backbone'])
        cfg.pop('pretrained_path', None)  # weights do not change the cost
        out_indices = tuple(cfg.pop('out_indices', (1, 2, 3, 4)))
        net = timm.create_model(cfg.pop('model_name'), pretrained=False, features_only=True,
                                out_indices=out_indices, **cfg)
        for p in net.parameters():
            p.requires_grad_(False)
        return net.eval()
    if kind != 'AdaptedBackbone' or 'backbone' not in bb:
        raise ValueError("backbone alone: expected model.backbone of type 'AdaptedBackbone' "
                         "(with a 'backbone' host config) or 'ConvMultiTaskBackbone', got type "
                         f'{kind!r}')
    host = MODELS.build(copy.deepcopy(bb['backbone']))
    host.init_backbone_weights()
    for p in host.parameters():
        p.requires_grad_(False)
    return host.eval()


def make_train_data(tasks: Sequence[str], num_classes: Dict[str, int], batch_size: int,
                    img_size: int, seed: int) -> Dict[str, Any]:
    """A packed batch like ``PackMultiTaskInputs`` + ``pseudo_collate`` gives, random targets.

    Formats (docs/architecture.md): uint8 (3, H, W) RGB images; seg labels int64
    (1, H, W) in [0, C); saliency int64 {0, 1}; normals float32 unit (3, H, W);
    depth float32 metres > 0 (1, H, W).
    """
    from mtdense.structures import MultiTaskDataSample
    from mtdense.tasks import get_task_spec
    g = torch.Generator().manual_seed(seed)
    h = w = img_size
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        s = MultiTaskDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                              img_path=f'random_{i}.png', tasks=list(tasks)))
        for t in tasks:
            spec = get_task_spec(t)
            if spec.kind in ('seg', 'binary'):
                classes = spec.out_channels(num_classes.get(t)) if spec.kind == 'seg' else 2
                s.set_gt(t, torch.randint(0, classes, (1, h, w), generator=g))
            elif spec.kind == 'normals':
                n = torch.randn(3, h, w, generator=g)
                s.set_gt(t, n / n.norm(dim=0, keepdim=True).clamp(min=1e-6))
            elif spec.kind == 'depth':
                s.set_gt(t, 0.5 + 9.5 * torch.rand(1, h, w, generator=g))
            else:  # pragma: no cover - closed set of kinds
                raise ValueError(f'make_train_data: unknown task kind {spec.kind!r} of {t!r}')
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def make_infer_data(batch_size: int, img_size: int, seed: int) -> Dict[str, Any]:
    """Unlabelled packed batch for ``test_step``."""
    from mtdense.structures import MultiTaskDataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, img_size, img_size), dtype=torch.uint8, generator=g)
              for _ in range(batch_size)]
    samples = [MultiTaskDataSample(metainfo=dict(img_shape=(img_size, img_size),
                                                 ori_shape=(img_size, img_size)))
               for _ in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


# --------------------------------------------------------------------------- measuring
def _params(model: torch.nn.Module) -> Dict[str, Any]:
    rep = model.parameter_report()
    bb = rep.get('backbone_report', {}) or {}
    heads = rep['heads']
    return OrderedDict(
        total=int(rep['total']), trainable=int(rep['trainable']),
        backbone_total=int(rep['backbone_total']),
        backbone_trainable=int(rep['backbone_trainable']),
        wrapped_backbone_total=int(bb.get('backbone_total', rep['backbone_total'])),
        heads_total=int(sum(v['total'] for v in heads.values())),
        heads_trainable=int(sum(v['trainable'] for v in heads.values())),
        method_shared_trainable=int(bb['shared_trainable']) if 'shared_trainable' in bb else None,
        method_per_task_trainable={t: int(v) for t, v in bb.get('per_task_trainable', {}).items()},
        head_trainable_per_task={t: int(v['trainable']) for t, v in heads.items()},
    )


def _autocast(device: str, enabled: bool):
    dev = 'cuda' if device.startswith('cuda') else 'cpu'
    return torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=enabled)


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


class _BackboneTimer:
    """Forward hooks timing ``module`` inside each timed iteration."""

    def __init__(self, module: torch.nn.Module, device: str) -> None:
        self.cuda = device.startswith('cuda')
        self.times: List[float] = []
        self.active = False
        self._t0 = 0.0
        self._handles = [module.register_forward_pre_hook(self._pre),
                         module.register_forward_hook(self._post)]

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _pre(self, module, args) -> None:
        if self.active:
            self._sync()
            self._t0 = time.perf_counter()

    def _post(self, module, args, output) -> None:
        if self.active:
            self._sync()
            self.times.append(time.perf_counter() - self._t0)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _point_base(job: Dict[str, Any], label: str, num_tasks: Optional[int], tasks, mode: str):
    s = job['settings']
    return OrderedDict(
        label=label, config=job.get('config'), method=job.get('method'), num_tasks=num_tasks,
        tasks=list(tasks) if tasks is not None else None, mode=mode, img_size=s['img_size'],
        batch_size=s['batch_size'], device=s['device'],
        dtype='bf16-autocast' if s['bf16'] else 'fp32', channels_last=s['channels_last'],
        compile=s['compile'], infer_forward=s['infer_forward'] if mode == 'infer' else None,
        threads=torch.get_num_threads(), allocator_env=allocator_env(), error=None)


def _finish_timing(rec: Dict[str, Any], timing: Dict[str, Any], batch_size: int) -> None:
    lat = latency_stats(timing['seconds'])
    rec['latency'] = lat
    rec['throughput_img_s'] = batch_size / (lat['median_ms'] / 1000.0)
    # throughput at the p90 / p10 latencies (low / high end of the spread)
    rec['throughput_img_s_p90_latency'] = batch_size / (lat['p90_ms'] / 1000.0)
    rec['throughput_img_s_p10_latency'] = batch_size / (lat['p10_ms'] / 1000.0)
    rec['warmup_ms'] = [1000.0 * t for t in timing['warmup_seconds']]


def _prepare(model: torch.nn.Module, s: Dict[str, Any]) -> torch.nn.Module:
    model = model.to(s['device'])
    if s['channels_last']:
        model = model.to(memory_format=torch.channels_last)
    return model


def _maybe_compile(model: torch.nn.Module, s: Dict[str, Any]) -> None:
    if s['compile']:
        # compile the bound forward so both model(x, mode=...) and train_step use it
        model.forward = torch.compile(model.forward)


def _random_images(s: Dict[str, Any]) -> torch.Tensor:
    """A seeded normalised-image batch for a ``mode='tensor'`` forward, on the device and
    in the memory format of the settings."""
    size = s['img_size']
    x = torch.randn(s['batch_size'], 3, size, size,
                    generator=torch.Generator().manual_seed(s['seed'])).to(s['device'])
    if s['channels_last']:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _measure_infer(model, job, label, num_tasks, tasks) -> Dict[str, Any]:
    s = job['settings']
    dev, bs, size = s['device'], s['batch_size'], s['img_size']
    rec = _point_base(job, label, num_tasks, tasks, 'infer')
    model.eval()
    if s['infer_forward'] == 'tensor':
        x = _random_images(s)

        def step():
            with torch.inference_mode(), _autocast(dev, s['bf16']):
                model(x, mode='tensor')
    else:
        data = make_infer_data(bs, size, s['seed'])

        def step():
            with torch.inference_mode(), _autocast(dev, s['bf16']):
                model.test_step(data)

    timer = _BackboneTimer(model.backbone, dev) if (s['breakdown'] and not s['compile']) else None
    try:
        with PeakMemory(dev) as mem:
            timing = time_iterations(step, dev, _warmup_count(s), s['repeats'], s['max_seconds'],
                                     s['min_repeats'],
                                     on_iteration=(lambda i: setattr(timer, 'active', True))
                                     if timer is not None else None)
    finally:
        if timer is not None:
            timer.remove()
    _finish_timing(rec, timing, bs)
    if timer is not None and timer.times:
        rec['backbone_latency'] = latency_stats(timer.times)
    rec['memory'] = dict(peak_mb=mem.peak_mb, increase_mb=mem.increase_mb, method=mem.method)
    return rec


def _measure_train(model, job, label, num_tasks, tasks) -> Dict[str, Any]:
    from mmengine.optim import OptimWrapper
    s = job['settings']
    dev, bs, size = s['device'], s['batch_size'], s['img_size']
    rec = _point_base(job, label, num_tasks, tasks, 'train')
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError(f'{label}: the model has no trainable parameters')
    optim = OptimWrapper(torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05))
    data = make_train_data(tasks, dict(model.num_classes), bs, size, s['seed'])

    def step():
        with _autocast(dev, s['bf16']):
            model.train_step(data, optim)

    with PeakMemory(dev) as mem:
        timing = time_iterations(step, dev, _warmup_count(s), s['repeats'], s['max_seconds'],
                                 s['min_repeats'])
    _finish_timing(rec, timing, bs)
    rec['memory'] = dict(peak_mb=mem.peak_mb, increase_mb=mem.increase_mb, method=mem.method)
    optim.zero_grad()
    return rec


#: Extra untimed iterations for the first measurement of a process: one-time costs
#: (oneDNN primitive creation, first-touch of allocator pools, lazy imports) made the
#: first point of each fresh process up to ~35 % slower than later ones.
FIRST_POINT_EXTRA_WARMUP = 2
_process_state = {'warm': False}


def _warmup_count(s: Dict[str, Any]) -> int:
    extra = 0 if _process_state['warm'] else FIRST_POINT_EXTRA_WARMUP
    _process_state['warm'] = True
    return int(s['warmup']) + extra


def _log(msg: str) -> None:
    print(f'[profile_tasks] {msg}', file=sys.stderr, flush=True)


def _describe(rec: Dict[str, Any]) -> str:
    if rec.get('error'):
        return f"{rec['label']} T={rec['num_tasks']} {rec['mode']}: ERROR {rec['error']}"
    if rec['mode'] == 'count':
        fl = rec.get('flops') or {}
        return (f"{rec['label']} T={rec['num_tasks']} count: "
                f"bb {fl.get('backbone', float('nan')) / 1e9:.3f} GFLOPs/img, "
                f"trainable {rec['params']['trainable']}")
    lat = rec['latency']
    msg = (f"{rec['label']} T={rec['num_tasks']} {rec['mode']}: {lat['median_ms']:.1f} ms "
           f"[p10 {lat['p10_ms']:.1f}, p90 {lat['p90_ms']:.1f}, n={lat['n']}] "
           f"{rec['throughput_img_s']:.2f} img/s, peak {rec['memory']['peak_mb']:.0f} MB "
           f"(+{rec['memory']['increase_mb']:.0f})")
    if rec.get('flops'):
        msg += f", bb {rec['flops']['backbone'] / 1e9:.3f} GFLOPs/img"
    return msg


def run_job(job: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Measure one config (all its T) or the backbone alone; return point records.

    ``job = dict(kind='config'|'backbone_alone', label, config, num_tasks=[...],
    settings=asdict(ProfileSettings))``. Errors of one point are recorded in its
    ``error`` field and do not stop the others.
    """
    import mtdense  # noqa: F401  (mmcv.ops stand-in before mmseg imports)
    s = job['settings']
    if s.get('threads'):
        torch.set_num_threads(int(s['threads']))
    model_cfg = load_model_cfg(job['config'], s['num_classes'], s.get('cfg_options'))
    peft = model_cfg.get('backbone', {}).get('peft', {}) if isinstance(
        model_cfg.get('backbone'), dict) else {}
    job = dict(job, method=peft.get('type') if isinstance(peft, dict) else None)
    records: List[Dict[str, Any]] = []
    if job['kind'] == BACKBONE_ALONE:
        records.append(_run_backbone_alone(job, model_cfg))
        return records
    pool = s.get('task_pool') or list(model_cfg['tasks'])
    for num_tasks in job['num_tasks']:
        tasks = make_task_list(pool, num_tasks)
        try:
            model = _prepare(build_model(model_cfg, tasks, s['seed']), s)
        except Exception as exc:  # recorded, reported, and the run goes on
            for mode in s['modes']:
                rec = _point_base(job, job['label'], num_tasks, tasks, mode)
                rec['error'] = f'build failed: {type(exc).__name__}: {exc}'
                records.append(rec)
                _log(_describe(rec))
            continue
        params = _params(model)
        flops = None
        if s['flops']:
            try:
                flops = count_model_flops(model, s['img_size'], 1, s['device'])
            except Exception as exc:
                flops = dict(error=f'{type(exc).__name__}: {exc}')
        _maybe_compile(model, s)
        for mode in s['modes']:
            load_before = _loadavg()
            try:
                if mode == 'count':
                    rec = _point_base(job, job['label'], num_tasks, tasks, mode)
                else:
                    fn = _measure_infer if mode == 'infer' else _measure_train
                    rec = fn(model, job, job['label'], num_tasks, tasks)
            except Exception as exc:
                rec = _point_base(job, job['label'], num_tasks, tasks, mode)
                rec['error'] = f'{type(exc).__name__}: {exc}'
            rec['params'] = params
            rec['flops'] = flops if flops and 'error' not in flops else None
            if flops and 'error' in flops:
                rec['flops_error'] = flops['error']
            rec['loadavg_before'], rec['loadavg_after'] = load_before, _loadavg()
            records.append(rec)
            _log(_describe(rec))
            if mode == 'train':
                # free the gradients before the next point (weights changed, cost did not)
                model.zero_grad(set_to_none=True)
        del model
        gc.collect()
        if s['device'].startswith('cuda'):
            torch.cuda.empty_cache()
    return records


class _HostForward(torch.nn.Module):
    def __init__(self, host: torch.nn.Module) -> None:
        super().__init__()
        self.host = host

    def forward(self, x):
        if hasattr(self.host, 'forward_main'):  # a BackboneHost
            return tuple(self.host.forward_main(x))
        return tuple(self.host(x))  # a timm features_only CNN


def _run_backbone_alone(job: Dict[str, Any], model_cfg: Dict[str, Any]) -> Dict[str, Any]:
    s = job['settings']
    dev, bs, size = s['device'], s['batch_size'], s['img_size']
    rec = _point_base(job, BACKBONE_ALONE, None, None, 'infer')
    rec['method'] = None
    try:
        host = build_backbone_alone(model_cfg, s['seed']).to(dev)
        if s['channels_last']:
            host = host.to(memory_format=torch.channels_last)
        n = int(sum(p.numel() for p in host.parameters()))
        rec['params'] = OrderedDict(total=n, trainable=0, backbone_total=n, backbone_trainable=0,
                                    wrapped_backbone_total=n, heads_total=0, heads_trainable=0)
        wrapper = _HostForward(host).eval()
        if s['flops']:
            # counted as executed, like the model points (count_model_flops)
            f = count_executed_flops(wrapper, (torch.randn(1, 3, size, size, device=dev),))
            rec['flops'] = dict(total=f['total'], backbone=f['total'], heads=0, heads_per_task={},
                                other=0, by_operator=f['by_operator'],
                                by_category=f['by_category'],
                                uncounted_ops=f['unformulated_ops'], batch_size=1)
        if not any(m in ('infer', 'train') for m in s['modes']):
            rec['mode'] = 'count'
            _log(_describe(rec))
            return rec
        _maybe_compile(wrapper, s)
        x = _random_images(s)

        def step():
            with torch.inference_mode(), _autocast(dev, s['bf16']):
                wrapper(x)

        rec['loadavg_before'] = _loadavg()
        with PeakMemory(dev) as mem:
            timing = time_iterations(step, dev, _warmup_count(s), s['repeats'], s['max_seconds'],
                                     s['min_repeats'])
        _finish_timing(rec, timing, bs)
        rec['memory'] = dict(peak_mb=mem.peak_mb, increase_mb=mem.increase_mb, method=mem.method)
        rec['loadavg_after'] = _loadavg()
    except Exception as exc:
        rec['error'] = f'{type(exc).__name__}: {exc}'
    _log(_describe(rec))
    return rec


# --------------------------------------------------------------------------- orchestration
def _run_subprocess(job: Dict[str, Any]) -> List[Dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix='mtdense_profile_') as tmp:
        spec, out = Path(tmp) / 'job.json', Path(tmp) / 'records.json'
        spec.write_text(json.dumps(job))
        env = dict(os.environ)
        if job['settings'].get('cpu_alloc') == 'cached':
            env.update(CACHED_ALLOC_ENV)
        proc = subprocess.run(
            [sys.executable, '-m', 'mtdense.analysis.worker', str(spec), str(out)], env=env)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"profile worker for {job['label']!r} ({job.get('config')}) exited "
                               f'with code {proc.returncode}; see its messages above')
        return json.loads(out.read_text())


def _jobs(settings: ProfileSettings) -> List[Dict[str, Any]]:
    s = asdict(settings)
    jobs = []
    if settings.backbone_alone:
        jobs.append(dict(kind=BACKBONE_ALONE, label=BACKBONE_ALONE, config=settings.configs[0][1],
                         num_tasks=[], settings=s))
    for label, path in settings.configs:
        if settings.isolate == 'point':
            jobs += [dict(kind='config', label=label, config=path, num_tasks=[t], settings=s)
                     for t in settings.num_tasks]
        else:
            jobs.append(dict(kind='config', label=label, config=path,
                             num_tasks=list(settings.num_tasks), settings=s))
    return jobs


def profile(settings: ProfileSettings) -> Dict[str, Any]:
    """Run every measurement of ``settings``; return the report (see README schema)."""
    settings.validate()
    started = time.time()
    records: List[Dict[str, Any]] = []
    for job in _jobs(settings):
        if settings.isolate == 'none':
            records += run_job(job)
        else:
            records += _run_subprocess(job)
    report = OrderedDict(
        schema_version=SCHEMA_VERSION,
        tool='tools/profile_tasks.py',
        created=_dt.datetime.now().astimezone().isoformat(timespec='seconds'),
        wall_seconds=round(time.time() - started, 1),
        machine=machine_info(settings.device),
        settings=asdict(settings),
        flop_convention=('FLOPs = multiply-accumulates (fvcore/mmengine convention), per image, '
                         'counted as executed (FlopCounterMode; the jit trace beside it in '
                         'flops.traced); element-wise ops not counted; backbone = backbone + '
                         'PETL method + neck'),
        memory_convention=_memory_convention(settings.device),
        results=records,
    )
    report['summary'] = summarize(records)
    return report


def _memory_convention(device: str) -> str:
    if device.startswith('cuda'):
        return ('peak_mb = torch.cuda.max_memory_allocated during the timed loop (reset before); '
                'increase_mb = peak - allocated at its start')
    return ('peak_mb = process VmHWM during the timed loop (reset via /proc/self/clear_refs; '
            'includes model, inputs, interpreter); increase_mb = peak - RSS at its start '
            '(activations, workspaces, gradients, optimizer state); one fresh process per config '
            "(isolate='config': heap freed by an earlier point may be reused without raising RSS, "
            "so increases of later points can read low; isolate='point' avoids it)")


def allocator_env() -> Dict[str, str]:
    """The environment variables that change this process's memory allocator."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith('MALLOC_') or k in ('LD_PRELOAD', 'GLIBC_TUNABLES')}


def machine_info(device: str = 'cpu') -> Dict[str, Any]:
    """CPU model, cores, memory, torch / mmengine versions, device name."""
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
    info['mem_total_gb'] = _mem_total_gb()
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
        info['device_name'] = torch.cuda.get_device_name(idx)
        info['cuda'] = torch.version.cuda
    else:
        info['device_name'] = info['cpu_model']
    info['loadavg'] = _loadavg()
    return info


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
_CPU_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile', 'neon', 'sve')


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


def _mem_total_gb() -> Optional[float]:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- summary
def _ok(rec: Dict[str, Any]) -> bool:
    return not rec.get('error') and 'latency' in rec


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per-config ratios versus the smallest T and the project's cost targets (README, Profiling)."""
    per_label: Dict[str, Any] = OrderedDict()
    labels = [r['label'] for r in records if r['label'] != BACKBONE_ALONE]
    for label in dict.fromkeys(labels):
        recs = [r for r in records if r['label'] == label]
        entry: Dict[str, Any] = OrderedDict(method=recs[0].get('method'))
        ts = sorted({r['num_tasks'] for r in recs})
        flops = {r['num_tasks']: r['flops'] for r in recs if r.get('flops')}
        if flops:
            t0 = min(flops)
            entry['backbone_flops_ratio'] = {t: flops[t]['backbone'] / flops[t0]['backbone']
                                             for t in sorted(flops)}
            entry['total_flops_ratio'] = {t: flops[t]['total'] / flops[t0]['total']
                                          for t in sorted(flops)}
        for mode in MODES:
            ok = {r['num_tasks']: r for r in recs if r['mode'] == mode and _ok(r)}
            if ok:
                t0 = min(ok)
                entry[f'{mode}_throughput_ratio'] = {
                    t: ok[t]['throughput_img_s'] / ok[t0]['throughput_img_s'] for t in sorted(ok)}
                entry[f'{mode}_peak_mem_ratio'] = {
                    t: ok[t]['memory']['peak_mb'] / ok[t0]['memory']['peak_mb'] for t in sorted(ok)}
        params = {r['num_tasks']: r['params'] for r in recs if r.get('params')}
        if len(params) >= 2:
            lo, hi = min(params), max(params)
            entry['trainable_params_per_added_task'] = (
                (params[hi]['trainable'] - params[lo]['trainable']) / (hi - lo))
            entry['backbone_trainable_params_per_added_task'] = (
                (params[hi]['backbone_trainable'] - params[lo]['backbone_trainable']) / (hi - lo))
        entry['num_tasks'] = ts
        entry['errors'] = [f"T={r['num_tasks']} {r['mode']}: {r['error']}"
                           for r in recs if r.get('error')]
        per_label[label] = entry
    return OrderedDict(per_config=per_label, targets=evaluate_targets(records))


def _find(records, method: str, mode: str, num_tasks: int):
    for r in records:
        if (r.get('method') == method and r['mode'] == mode and r['num_tasks'] == num_tasks
                and _ok(r)):
            return r
    return None


def evaluate_targets(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The project's cost targets, for every VMT-type config in the run.

    Each entry: ``target``, ``label``, ``value``, ``threshold``, ``status``
    ('met' | 'not met' | 'not measured') and ``note``.
    """
    out: List[Dict[str, Any]] = []
    vmt_labels = OrderedDict()
    for r in records:
        if r.get('method') in ('VMTAdapter', 'VMTAdapterLite'):
            vmt_labels.setdefault(r['label'], r['method'])
    for label, method in vmt_labels.items():
        recs = [r for r in records if r['label'] == label]

        def get(mode, t):
            for r in recs:
                if r['mode'] == mode and r['num_tasks'] == t and _ok(r):
                    return r
            return None

        # 1. backbone + adapter FLOPs, T=16 vs T=1
        fl = {r['num_tasks']: r['flops'] for r in recs if r.get('flops')}
        entry = dict(target='backbone+adapter FLOPs(T=16) <= 1.05 x FLOPs(T=1)', label=label,
                     threshold=1.05, value=None, status='not measured', note='')
        if 1 in fl and 16 in fl:
            v = fl[16]['backbone'] / fl[1]['backbone']
            entry.update(value=v, status='met' if v <= 1.05 else 'not met')
        entry['note'] = f"img_size {recs[0]['img_size']}"
        out.append(entry)
        # 2. inference throughput T=8 vs T=1
        a, b = get('infer', 1), get('infer', 8)
        entry = dict(target='inference throughput(T=8) >= 0.8 x throughput(T=1)', label=label,
                     threshold=0.8, value=None, status='not measured',
                     note=f"img_size {recs[0]['img_size']} (the targets are stated at 448), "
                          f"device {recs[0]['device']}")
        if a and b:
            v = b['throughput_img_s'] / a['throughput_img_s']
            entry.update(value=v, status='met' if v >= 0.8 else 'not met')
            if a.get('backbone_latency') and b.get('backbone_latency'):
                entry['backbone_only_ratio'] = (a['backbone_latency']['median_ms']
                                                / b['backbone_latency']['median_ms'])
        out.append(entry)
        # 3. training step vs multi-task full fine-tuning, at every common T
        times, mems = {}, {}
        for r in recs:
            if r['mode'] != 'train' or not _ok(r):
                continue
            ft = _find(records, 'FullFineTune', 'train', r['num_tasks'])
            if ft is not None:
                times[r['num_tasks']] = r['latency']['median_ms'] / ft['latency']['median_ms']
                mems[r['num_tasks']] = r['memory']['peak_mb'] / ft['memory']['peak_mb']
        for what, ratios in (('time', times), ('peak memory', mems)):
            entry = dict(target=f'training step {what} < multi-task full FT (same batch)',
                         label=label, threshold=1.0, value=ratios or None,
                         status='not measured', note='ratio VMT / FullFT per T')
            if ratios:
                entry['status'] = 'met' if all(v < 1.0 for v in ratios.values()) else 'not met'
            out.append(entry)
    return out


# --------------------------------------------------------------------------- writing
CSV_COLUMNS = [
    'label', 'config', 'method', 'mode', 'num_tasks', 'img_size', 'batch_size', 'device', 'dtype',
    'channels_last', 'compile', 'threads', 'allocator_env', 'throughput_img_s', 'latency_median_ms',
    'latency_p10_ms', 'latency_p90_ms', 'latency_iqr_ms', 'latency_n', 'backbone_latency_median_ms',
    'peak_mem_mb', 'peak_mem_increase_mb', 'mem_method', 'gflops_total', 'gflops_backbone',
    'gflops_heads', 'gflops_other', 'params_total', 'params_trainable', 'params_backbone_trainable',
    'params_heads_trainable', 'loadavg_before', 'error',
]


def _csv_row(r: Dict[str, Any]) -> Dict[str, Any]:
    lat, mem, fl, pr = (r.get('latency') or {}), (r.get('memory') or {}), (r.get('flops') or {}), \
        (r.get('params') or {})
    bl = r.get('backbone_latency') or {}
    g = (lambda k: fl[k] / 1e9 if k in fl else None)
    return dict(
        label=r['label'], config=r.get('config'), method=r.get('method'), mode=r['mode'],
        num_tasks=r['num_tasks'], img_size=r['img_size'], batch_size=r['batch_size'],
        device=r['device'], dtype=r['dtype'], channels_last=r['channels_last'],
        compile=r['compile'],
        threads=r.get('threads'),
        allocator_env=';'.join(f'{k}={v}' for k, v in (r.get('allocator_env') or {}).items()),
        throughput_img_s=r.get('throughput_img_s'),
        latency_median_ms=lat.get('median_ms'), latency_p10_ms=lat.get('p10_ms'),
        latency_p90_ms=lat.get('p90_ms'), latency_iqr_ms=lat.get('iqr_ms'), latency_n=lat.get('n'),
        backbone_latency_median_ms=bl.get('median_ms'), peak_mem_mb=mem.get('peak_mb'),
        peak_mem_increase_mb=mem.get('increase_mb'), mem_method=mem.get('method'),
        gflops_total=g('total'), gflops_backbone=g('backbone'), gflops_heads=g('heads'),
        gflops_other=g('other'), params_total=pr.get('total'), params_trainable=pr.get('trainable'),
        params_backbone_trainable=pr.get('backbone_trainable'),
        params_heads_trainable=pr.get('heads_trainable'),
        loadavg_before=(r.get('loadavg_before') or [None])[0], error=r.get('error'))


def write_csv(report: Dict[str, Any], path: str) -> None:
    """One row per (config, T, mode) measurement, flat columns (``CSV_COLUMNS``)."""
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in report['results']:
            w.writerow({k: ('' if v is None else (f'{v:.6g}' if isinstance(v, float) else v))
                        for k, v in _csv_row(r).items()})


def write_json(report: Dict[str, Any], path: str) -> None:
    def default(o):
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f'write_json: cannot serialise {type(o).__name__}')
    with open(path, 'w') as f:
        json.dump(report, f, indent=1, default=default, allow_nan=True)
        f.write('\n')
