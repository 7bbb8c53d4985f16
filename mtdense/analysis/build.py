"""Building what the profiler measures: models with T (cloned) tasks, the bare backbone,
random batches, and :class:`Point` (one model with its inference / training step)."""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from .flops import count_executed_flops, count_model_flops
from .settings import BACKBONE_ALONE

__all__ = ['make_task_list', 'load_model_cfg', 'build_model', 'build_backbone_alone',
           'make_train_data', 'make_infer_data', 'model_params', 'make_optimizer', 'Point',
           'point_id', 'unit_id']


def point_id(label: str, num_tasks: Optional[int]) -> str:
    """Key of a (config, T) point; the bare backbone has no T."""
    return label if num_tasks is None else f'{label}@T{num_tasks}'


def unit_id(label: str, num_tasks: Optional[int], mode: str) -> str:
    """Key of a timed (point, mode) unit."""
    return f'{point_id(label, num_tasks)}:{mode}'


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


def method_of(model_cfg: Dict[str, Any]) -> Optional[str]:
    """The PETL method type of a model config (None without an ``AdaptedBackbone``)."""
    bb = model_cfg.get('backbone')
    peft = bb.get('peft', {}) if isinstance(bb, dict) else {}
    return peft.get('type') if isinstance(peft, dict) else None


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

    Targets: each task's :meth:`~mtdense.tasks.BaseTask.random_target` (valid values in the
    packed layout of docs/architecture.md); uint8 (3, H, W) RGB images.
    """
    from mtdense.structures import MultiTaskDataSample
    from mtdense.tasks import get_task
    g = torch.Generator().manual_seed(seed)
    h = w = img_size
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        s = MultiTaskDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                              img_path=f'random_{i}.png', tasks=list(tasks)))
        for t in tasks:
            s.set_gt(t, get_task(t).random_target(h, w, g, num_classes.get(t)))
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


def model_params(model: torch.nn.Module) -> Dict[str, Any]:
    """Parameter counts of a ``MultiTaskDenseModel`` (total, trainable, per part, per task)."""
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


def make_optimizer(params: List[torch.nn.Parameter], kind: str) -> torch.optim.Optimizer:
    """AdamW (lr 1e-4, weight decay 0.05) in the implementation ``kind`` (settings.OPTIMIZERS)."""
    extra = dict(fused=dict(fused=True), foreach=dict(foreach=True), loop=dict(foreach=False))
    if kind not in extra:
        raise ValueError(f'make_optimizer: unknown optimizer implementation {kind!r}')
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, **extra[kind])


def _autocast(device: str, enabled: bool):
    dev = 'cuda' if device.startswith('cuda') else 'cpu'
    return torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=enabled)


def _random_images(s: Dict[str, Any]) -> torch.Tensor:
    """A seeded normalised-image batch for a ``mode='tensor'`` forward, on the device and
    in the memory format of the settings."""
    size = s['img_size']
    x = torch.randn(s['batch_size'], 3, size, size,
                    generator=torch.Generator().manual_seed(s['seed'])).to(s['device'])
    if s['channels_last']:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class _HostForward(torch.nn.Module):
    """The bare backbone's own forward (a ``BackboneHost`` or a timm features CNN)."""

    def __init__(self, host: torch.nn.Module) -> None:
        super().__init__()
        self.host = host

    def forward(self, x):
        if hasattr(self.host, 'forward_main'):  # a BackboneHost
            return tuple(self.host.forward_main(x))
        return tuple(self.host(x))  # a timm features_only CNN


class Point:
    """One (config, T) model, or the bare backbone, with its steps, in this process.

    ``spec = dict(label, config, num_tasks)`` (``num_tasks`` None for the backbone alone,
    whose label is ``BACKBONE_ALONE``); ``settings`` is ``asdict(ProfileSettings)``.
    After :meth:`build`, :attr:`info` holds what does not need timing (tasks, method,
    params, flops, or the build error) and :meth:`step` gives the callable a mode times.
    """

    def __init__(self, spec: Dict[str, Any], settings: Dict[str, Any]) -> None:
        self.spec, self.s = dict(spec), settings
        self.label, self.num_tasks = spec['label'], spec.get('num_tasks')
        self.alone = self.label == BACKBONE_ALONE
        self.model: Optional[torch.nn.Module] = None
        self.info: Dict[str, Any] = {}
        self._steps: Dict[str, Callable[[], None]] = {}
        self._optim = None

    # ------------------------------------------------------------------ build
    def build(self, count_flops: bool = True) -> Dict[str, Any]:
        """Build the model (and count its FLOPs); errors go to ``info['error']``."""
        s = self.s
        info: Dict[str, Any] = OrderedDict(label=self.label, config=self.spec['config'],
                                           num_tasks=self.num_tasks, error=None)
        self.info = info
        try:
            model_cfg = load_model_cfg(self.spec['config'], s['num_classes'], s.get('cfg_options'))
            info['method'] = None if self.alone else method_of(model_cfg)
            if self.alone:
                info['tasks'] = None
                self._build_alone(model_cfg, count_flops)
            else:
                pool = s.get('task_pool') or list(model_cfg['tasks'])
                info['tasks'] = make_task_list(pool, self.num_tasks)
                self._build_model(model_cfg, info['tasks'], count_flops)
        except Exception as exc:  # recorded, reported, and the run goes on
            info['error'] = f'build failed: {type(exc).__name__}: {exc}'
            self.model = None
        return info

    def _build_model(self, model_cfg, tasks, count_flops: bool) -> None:
        s, info = self.s, self.info
        model = build_model(model_cfg, tasks, s['seed']).to(s['device'])
        if s['channels_last']:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        info['params'] = model_params(model)
        info['flops'] = None
        if count_flops and s['flops']:
            try:
                info['flops'] = count_model_flops(model, s['img_size'], 1, s['device'])
            except Exception as exc:
                info['flops_error'] = f'{type(exc).__name__}: {exc}'
        if s['compile']:
            # compile the bound forward so both model(x, mode=...) and train_step use it
            model.forward = torch.compile(model.forward)

    def _build_alone(self, model_cfg, count_flops: bool) -> None:
        s, info = self.s, self.info
        host = build_backbone_alone(model_cfg, s['seed']).to(s['device'])
        if s['channels_last']:
            host = host.to(memory_format=torch.channels_last)
        n = int(sum(p.numel() for p in host.parameters()))
        info['params'] = OrderedDict(total=n, trainable=0, backbone_total=n, backbone_trainable=0,
                                     wrapped_backbone_total=n, heads_total=0, heads_trainable=0)
        wrapper = _HostForward(host).eval()
        info['flops'] = None
        if count_flops and s['flops']:
            # counted as executed, like the model points (count_model_flops)
            f = count_executed_flops(wrapper, (torch.randn(1, 3, s['img_size'], s['img_size'],
                                                           device=s['device']),))
            info['flops'] = dict(total=f['total'], backbone=f['total'], heads=0, heads_per_task={},
                                 other=0, by_operator=f['by_operator'],
                                 by_category=f['by_category'],
                                 uncounted_ops=f['unformulated_ops'], batch_size=1)
        if s['compile']:
            wrapper.forward = torch.compile(wrapper.forward)
        self.model = wrapper

    # ------------------------------------------------------------------ steps
    def modes(self) -> List[str]:
        """Timed modes of this point (the bare backbone has inference only)."""
        timed = [m for m in self.s['modes'] if m in ('infer', 'train')]
        return ['infer'] if (self.alone and timed) else timed

    def step(self, mode: str) -> Callable[[], None]:
        """The callable one timed iteration of ``mode`` runs (built on first use)."""
        if self.model is None:
            raise RuntimeError(f'{self.label}: not built ({self.info.get("error")})')
        if mode not in self._steps:
            self._steps[mode] = (self._infer_step() if mode == 'infer' else self._train_step())
        return self._steps[mode]

    def backbone_module(self) -> Optional[torch.nn.Module]:
        """The module whose time is reported as ``backbone_latency`` (None: not split)."""
        if self.alone or self.model is None or self.s['compile'] or not self.s['breakdown']:
            return None
        return self.model.backbone

    def _infer_step(self) -> Callable[[], None]:
        s, model = self.s, self.model
        dev, bf16 = s['device'], s['bf16']
        if self.alone or s['infer_forward'] == 'tensor':
            x = _random_images(s)

            def step() -> None:
                model.eval()
                with torch.inference_mode(), _autocast(dev, bf16):
                    model(x) if self.alone else model(x, mode='tensor')
        else:
            data = make_infer_data(s['batch_size'], s['img_size'], s['seed'])

            def step() -> None:
                model.eval()
                with torch.inference_mode(), _autocast(dev, bf16):
                    model.test_step(data)
        return step

    def _train_step(self) -> Callable[[], None]:
        from mmengine.optim import OptimWrapper
        s, model = self.s, self.model
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError(f'{self.label}: the model has no trainable parameters')
        self._optim = OptimWrapper(make_optimizer(params, s.get('optimizer', 'fused')))
        data = make_train_data(self.info['tasks'], dict(model.num_classes), s['batch_size'],
                               s['img_size'], s['seed'])
        dev, bf16, optim = s['device'], s['bf16'], self._optim

        def step() -> None:
            model.train()
            with _autocast(dev, bf16):
                model.train_step(data, optim)
        return step

    def resident_bytes(self) -> int:
        """Bytes of the model's parameters and buffers and of the optimiser state."""
        seen, total = set(), 0
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        if self._optim is not None:
            for state in self._optim.optimizer.state.values():
                tensors += [v for v in state.values() if torch.is_tensor(v)]
        for t in tensors:
            key = (t.device, t.data_ptr())
            if key not in seen:
                seen.add(key)
                total += t.numel() * t.element_size()
        return total

    def close(self) -> None:
        """Drop the model, optimiser state and steps."""
        self._steps.clear()
        self._optim = None
        self.model = None
