"""Multi-task timm CNN backbones adapted per task by a convolutional seed method.

Usage::

    backbone = dict(
        type='ConvMultiTaskBackbone',
        backbone=dict(model_name='mobilenetv2_100',          # any timm CNN with a 4-level
                      pretrained_path='mnv2_timm.safetensors'),  # stride-4..32 feature pyramid
        method=dict(type='ModulationAdapter', rank=4),     # or dict(type='DepthwiseSharing')
        tasks=['semseg', 'depth'])

``forward(x)`` returns ``{task: [f4, f8, f16, f32]}`` like
:class:`~mtdense.models.backbones.AdaptedBackbone`, so the same heads and
``MultiTaskDenseModel`` work; ``forward(x, tasks=[...])`` runs only those tasks'
streams (multi-domain classification runs one domain per batch).

How the per-task streams run (no Python loop over tasks in the hot path): the
image batch is repeated once per task, sample-major, so the tensor flowing
through the unmodified timm forward is ``(B*T, C, H, W)`` with row ``b*T + t``.
The same memory viewed as ``(B, T*C, H, W)`` stacks the tasks along channels,
so a per-task conv is *one* grouped conv with ``groups * T`` groups over the
tasks' stacked weights, and a per-task BatchNorm is one ``BatchNorm2d(T*C)``
(whose batch statistics are then per task). Shared convs and shared frozen BNs
run on the ``(B*T, C, H, W)`` view as usual; activations, residual adds and
pooling are per sample and need no change.

To get there, :meth:`ConvTaskMethod.attach` replaces every ``nn.Conv2d`` and
BatchNorm of the timm model by a *slot* (:class:`ConvSlot`, :class:`NormSlot`)
that holds the very same parameter and buffer objects under the same names
(timm state-dict keys are unchanged) and delegates its forward to the method.
The method's own parameters live in the method module (``method.*`` keys).
Pretrained weights are loaded into the unmodified timm model before that.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

__all__ = [
    'ConvMultiTaskBackbone', 'ConvTaskMethod', 'ConvSlot', 'NormSlot', 'TaskBatchNorm',
    'load_timm_state_dict', 'read_checkpoint', 'NORM_MODES'
]

#: ``'task'``: per-task BatchNorm (affine + statistics, trained, initialised from
#: the base BN; the multi-domain convention); ``'frozen'``: the base BN shared by
#: all tasks, always with its running statistics (never updated).
NORM_MODES = ('task', 'frozen')

_STRIDES = [4, 8, 16, 32]


def _safe_key(name: str) -> str:
    """Module path -> ``nn.ModuleDict`` key ('.' is not allowed there)."""
    return name.replace('.', '__')


class ConvSlot(nn.Module):
    """Stands in for one ``nn.Conv2d`` of the timm model.

    Holds the original ``weight``/``bias`` parameters under their original names
    and delegates ``forward`` to the owning method (kept unregistered, so the
    method's parameters are not saved twice).
    """

    def __init__(self, conv: nn.Conv2d, name: str, method: 'ConvTaskMethod') -> None:
        super().__init__()
        # Subclasses of Conv2d (timm Conv2dSame, ...) change the forward: not supported.
        if type(conv) is not nn.Conv2d:
            raise TypeError(f'{type(method).__name__}: {name} is a {type(conv).__name__}; only '
                            'plain nn.Conv2d layers can be adapted per task')
        if conv.padding_mode != 'zeros':
            raise ValueError(f'{type(method).__name__}: {name} uses padding_mode='
                             f"{conv.padding_mode!r}; only 'zeros' is supported")
        self.weight = conv.weight
        if conv.bias is not None:
            self.bias = conv.bias
        else:
            self.register_parameter('bias', None)
        self.in_channels = conv.in_channels
        self.out_channels = conv.out_channels
        self.kernel_size = tuple(conv.kernel_size)
        self.stride = conv.stride
        self.padding = conv.padding
        self.dilation = conv.dilation
        self.groups = conv.groups
        self.name = name
        object.__setattr__(self, '_method', method)

    @property
    def depthwise(self) -> bool:
        """One (or a few) filters per input channel: ``groups == in_channels > 1``."""
        return self.groups > 1 and self.groups == self.in_channels

    @property
    def spatial(self) -> bool:
        return any(k > 1 for k in self.kernel_size)

    def conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor], groups: int) -> Tensor:
        """``F.conv2d`` with this layer's stride/padding/dilation."""
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def base_forward(self, x: Tensor) -> Tensor:
        """The original (shared) conv on the ``(B*T, C, H, W)`` layout."""
        return self.conv(x, self.weight, self.bias, self.groups)

    def forward(self, x: Tensor) -> Tensor:
        return self._method.conv_forward(self, x)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, groups={self.groups}, bias={self.bias is not None}')


class NormSlot(nn.Module):
    """Stands in for one BatchNorm (``nn.BatchNorm2d`` or timm ``BatchNormAct2d``).

    Keeps the original parameters/buffers under their names and, for
    ``BatchNormAct2d``, its ``drop`` and ``act`` submodules (applied after the norm,
    as timm does).
    """

    def __init__(self, bn: nn.BatchNorm2d, name: str, method: 'ConvTaskMethod') -> None:
        super().__init__()
        owner = type(method).__name__
        if not bn.affine or not bn.track_running_stats:
            raise ValueError(f'{owner}: BatchNorm {name} has affine={bn.affine}, '
                             f'track_running_stats={bn.track_running_stats}; a frozen base '
                             'network needs both')
        self.weight = bn.weight
        self.bias = bn.bias
        self.register_buffer('running_mean', bn.running_mean)
        self.register_buffer('running_var', bn.running_var)
        self.register_buffer('num_batches_tracked', bn.num_batches_tracked)
        self.num_features = bn.num_features
        self.eps = bn.eps
        self.momentum = bn.momentum
        drop, act = getattr(bn, 'drop', None), getattr(bn, 'act', None)
        self.drop = nn.Identity() if drop is None else drop
        self.act = nn.Identity() if act is None else act
        self.name = name
        object.__setattr__(self, '_method', method)

    def base_forward(self, x: Tensor) -> Tensor:
        """The frozen base BN: always its running statistics."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self._method.norm_forward(self, x)
        return self.act(self.drop(x))

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def _is_batchnorm(m: nn.Module) -> bool:
    # exact BatchNorm2d or timm's BatchNormAct2d (a BatchNorm2d subclass that adds drop/act)
    if type(m) is nn.BatchNorm2d:
        return True
    return isinstance(m, nn.BatchNorm2d) and type(m).__name__ == 'BatchNormAct2d'


class TaskBatchNorm(nn.BatchNorm2d):
    """T independent BatchNorms over C channels, stored as one ``BatchNorm2d(T*C)``.

    Input/output: the ``(B*T', C, H, W)`` stream layout of ``T'`` active tasks
    (row ``b*T' + t``). All tasks active: one batch-norm call on the ``(B, T*C)``
    view; a contiguous range of tasks: the matching slice of the parameters and
    statistics (views, so running statistics update in place); any other subset:
    one call per task.
    """

    def __init__(self, num_tasks: int, base: NormSlot) -> None:
        super().__init__(num_tasks * base.num_features, eps=base.eps, momentum=base.momentum)
        self.num_tasks = num_tasks
        self.channels = base.num_features
        with torch.no_grad():
            self.weight.copy_(base.weight.detach().repeat(num_tasks))
            self.bias.copy_(base.bias.detach().repeat(num_tasks))
            self.running_mean.copy_(base.running_mean.repeat(num_tasks))
            self.running_var.copy_(base.running_var.repeat(num_tasks))

    def _bn(self, x: Tensor, lo: int, hi: int) -> Tensor:
        c = self.channels
        sl = slice(lo * c, hi * c)
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        else:
            factor = 0.0
        return F.batch_norm(x, self.running_mean[sl], self.running_var[sl], self.weight[sl],
                             self.bias[sl], self.training, factor, self.eps)

    def forward_tasks(self, x: Tensor, active: Sequence[int]) -> Tensor:
        n = len(active)
        bt, c, h, w = x.shape
        if c != self.channels or bt % n:
            raise ValueError(f'TaskBatchNorm: expected ({n}*B, {self.channels}, H, W), got '
                             f'{tuple(x.shape)}')
        b = bt // n
        if list(active) == list(range(active[0], active[0] + n)):
            y = self._bn(x.reshape(b, n * c, h, w), active[0], active[0] + n)
            return y.reshape(bt, c, h, w)
        xs = x.reshape(b, n, c, h, w)
        return torch.stack([self._bn(xs[:, i], t, t + 1) for i, t in enumerate(active)],
                           1).reshape(bt, c, h, w)

    @staticmethod
    def num_params(num_tasks: int, channels: int) -> int:
        return 2 * num_tasks * channels


class ConvTaskMethod(nn.Module):
    """Base of per-task methods for CNNs (see the module docstring for the layout).

    Subclasses implement :meth:`_build_conv` (create parameters for one conv slot),
    :meth:`conv_forward`, :meth:`expected_num_params` and the per-task counts.

    Args:
        tasks: task (or domain) names; the order fixes the task index.
        norm: one of :data:`NORM_MODES`.
    """

    task_specific = True

    def __init__(self, tasks: Sequence[str], norm: str = 'task') -> None:
        super().__init__()
        tasks = list(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f'{type(self).__name__}: tasks must be a non-empty list of unique '
                             f'names, got {tasks}')
        if norm not in NORM_MODES:
            raise ValueError(f'{type(self).__name__}: norm={norm!r} is not one of {NORM_MODES}')
        self.tasks: List[str] = tasks
        self.norm = norm
        self.task_norms = nn.ModuleDict()
        self._active: List[int] = list(range(len(tasks)))
        self._convs: Dict[str, ConvSlot] = {}
        self._norms: Dict[str, NormSlot] = {}
        self._attached = False

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    # ------------------------------------------------------------- attaching
    def attach(self, model: nn.Module) -> None:
        """Replace the convs and BatchNorms of ``model`` by slots; create parameters."""
        if self._attached:
            raise RuntimeError(f'{type(self).__name__} is already attached')
        replace: List[Tuple[str, nn.Module]] = []
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) or _is_batchnorm(m):
                replace.append((name, m))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) or type(m).__name__ in (
                    'Conv2dSame', 'CondConv2d'):
                raise TypeError(f'{type(self).__name__}: {name} is a {type(m).__name__}, which '
                                'cannot be adapted per task (BatchNorm2d/BatchNormAct2d and '
                                'plain Conv2d only)')
        if not any(isinstance(m, nn.Conv2d) for _, m in replace):
            raise ValueError(f'{type(self).__name__}: the backbone has no nn.Conv2d layers')
        for name, m in replace:
            parent_name, _, leaf = name.rpartition('.')
            parent = model.get_submodule(parent_name) if parent_name else model
            if isinstance(m, nn.Conv2d):
                slot = ConvSlot(m, name, self)
                self._convs[name] = slot
            else:
                slot = NormSlot(m, name, self)
                self._norms[name] = slot
            setattr(parent, leaf, slot)
        for slot in self._convs.values():
            self._build_conv(slot)
        if self.norm == 'task':
            for name, slot in self._norms.items():
                self.task_norms[_safe_key(name)] = TaskBatchNorm(self.num_tasks, slot)
        self._attached = True

    def _build_conv(self, slot: ConvSlot) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------- task streams
    @property
    def active(self) -> List[int]:
        """Indices of the tasks whose streams are running."""
        return self._active

    @contextlib.contextmanager
    def streams(self, indices: Sequence[int]) -> Iterator[None]:
        """Run only the streams of ``indices`` (in this order) inside the context."""
        indices = [int(i) for i in indices]
        if not indices or any(i < 0 or i >= self.num_tasks for i in indices) or \
                len(set(indices)) != len(indices):
            raise ValueError(f'{type(self).__name__}: invalid task indices {indices} for '
                             f'{self.num_tasks} tasks')
        previous = self._active
        self._active = indices
        try:
            yield
        finally:
            self._active = previous

    def split_streams(self, x: Tensor, channels: int, where: str) -> Tuple[int, int]:
        """Check ``x`` is ``(B*T', channels, H, W)``; return ``(B, T')``."""
        n = len(self._active)
        if x.dim() != 4 or x.shape[1] != channels or x.shape[0] % n:
            raise ValueError(f'{type(self).__name__}: {where} expected ({n}*B, {channels}, H, W) '
                             f'for {n} task stream(s), got {tuple(x.shape)}')
        return x.shape[0] // n, n

    # --------------------------------------------------------------- forward
    def conv_forward(self, slot: ConvSlot, x: Tensor) -> Tensor:
        raise NotImplementedError

    def norm_forward(self, slot: NormSlot, x: Tensor) -> Tensor:
        if self.norm == 'frozen':
            return slot.base_forward(x)
        return self.task_norms[_safe_key(slot.name)].forward_tasks(x, self._active)

    # ------------------------------------------------------------- counting
    def backbone_trainable_names(self) -> Set[str]:
        """Names (in the timm model) of base parameters this method trains."""
        return set()

    def norm_task_params(self) -> int:
        """Per-task BatchNorm parameters of one task."""
        if self.norm != 'task':
            return 0
        return sum(TaskBatchNorm.num_params(1, s.num_features) for s in self._norms.values())

    def expected_num_params(self) -> int:
        """Trainable parameters this method owns, from its closed-form count."""
        raise NotImplementedError

    def task_param_counts(self) -> Dict[str, int]:
        """Trainable parameters used by one task only (the rest is shared)."""
        raise NotImplementedError

    def task_owned_counts(self) -> Dict[str, int]:
        """Trainable parameters indexed by each task (its slice of every per-task tensor)."""
        return self.task_param_counts()

    def overhead_macs(self, slot: ConvSlot, out_shape: Tuple[int, int, int]) -> Tuple[int, int]:
        """Extra multiply-accumulates of one stream at ``slot`` beyond the base conv.

        Returns ``(per_image, per_batch)``: costs that scale with the batch (per
        image) and those paid once per forward (e.g. building modulated weights).
        """
        return 0, 0


def read_checkpoint(path: str) -> Dict[str, Tensor]:
    """State dict from ``.safetensors`` or a ``torch.load(weights_only=True)`` file.

    A ``{'state_dict': ...}`` or ``{'model': ...}`` wrapper is unwrapped.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path, device='cpu')
    else:
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f'{path}: cannot be read with torch.load(weights_only=True) '
                             f'({type(e).__name__}: {e}); convert it to a plain state dict') from e
    if isinstance(state, Mapping):
        for key in ('state_dict', 'model'):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f'{path}: expected a state dict (name -> tensor), got '
                         f'{type(state).__name__}')
    return OrderedDict(state)


def load_timm_state_dict(model: nn.Module, path: str) -> dict:
    """Load a timm (full-model) state dict into a ``features_only`` timm model.

    Keys of modules the features model does not have (classifier, head conv,
    ``fc``, stages after the last output) are skipped and reported; a missing
    key, an unexpected key inside a module the model has, or a shape mismatch
    raises an error naming the file and key.
    """
    state = read_checkpoint(path)
    own = model.state_dict()
    top_level = {name for name, _ in model.named_children()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in unexpected if k.split('.', 1)[0] in top_level]
    if missing or bad:
        raise KeyError(f'{path}: does not match the timm model: missing keys {missing[:5]}'
                       f'{" ..." if len(missing) > 5 else ""} ({len(missing)}), unexpected keys '
                       f'in backbone modules {bad[:5]} ({len(bad)}). Expected a timm state dict '
                       '(convert torchvision MobileNetV2 with tools/convert_mobilenetv2.py)')
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f'{path}: {k} has shape {tuple(state[k].shape)}, the model expects '
                             f'{tuple(v.shape)}')
    model.load_state_dict({k: state[k] for k in own}, strict=True)
    return dict(path=path, loaded=len(own), skipped=sorted(unexpected))


@MODELS.register_module()
class ConvMultiTaskBackbone(BaseModule):
    """A frozen timm CNN shared by all tasks + a per-task conv method.

    Args:
        backbone: ``dict(model_name=..., pretrained_path=None, out_indices=(1, 2, 3, 4),
            **timm_kwargs)``. The timm model is built with ``features_only=True`` and
            ``pretrained=False`` (no downloads); ``pretrained_path`` is a timm state
            dict (``.pth`` read with ``weights_only=True`` or ``.safetensors``). The
            outputs must have strides 4, 8, 16, 32 (ResNets, MobileNetV2, ...).
        method: ``dict(type='ModulationAdapter', rank=k)`` or
            ``dict(type='DepthwiseSharing', gate=True)``; ``tasks`` is filled in.
        tasks: task or domain names.
    """

    def __init__(self, backbone: dict, method: dict, tasks: Sequence[str],
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        # imported here so that building by config registers the seed methods
        from mtdense.models.adapters import depthwise_sharing, modulation  # noqa: F401

        if not isinstance(backbone, Mapping) or 'model_name' not in backbone:
            raise TypeError('ConvMultiTaskBackbone: backbone must be a dict with model_name '
                            f'(a timm CNN such as mobilenetv2_100, resnet18), got {backbone!r}')
        if not isinstance(method, Mapping) or 'type' not in method:
            raise TypeError(f'ConvMultiTaskBackbone: method must be a config dict with a type, '
                            f'got {method!r}')
        tasks = list(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f'ConvMultiTaskBackbone: tasks must be non-empty and unique, '
                             f'got {tasks}')
        if 'tasks' in method and list(method['tasks']) != tasks:
            raise ValueError(f"ConvMultiTaskBackbone: method['tasks']={method['tasks']} differs "
                             f'from tasks={tasks}')
        self.tasks: List[str] = tasks

        cfg = dict(backbone)
        model_name = cfg.pop('model_name')
        pretrained_path = cfg.pop('pretrained_path', None)
        out_indices = tuple(cfg.pop('out_indices', (1, 2, 3, 4)))
        for key in ('pretrained', 'features_only'):
            if key in cfg:
                raise ValueError(f'ConvMultiTaskBackbone: backbone.{key} is fixed '
                                 '(pretrained=False: weights come from pretrained_path; '
                                 'features_only=True)')
        try:
            model = timm.create_model(model_name, pretrained=False, features_only=True,
                                      out_indices=out_indices, **cfg)
        except RuntimeError as e:
            raise ValueError(f'ConvMultiTaskBackbone: timm cannot build {model_name!r} with '
                             f'features_only=True: {e}') from e
        strides = list(model.feature_info.reduction())
        if strides != _STRIDES:
            raise ValueError(f'ConvMultiTaskBackbone: {model_name} with out_indices={out_indices} '
                             f'gives strides {strides}, expected {_STRIDES}')
        self.model_name = model_name
        self.model = model
        self.checkpoint_report: Optional[dict] = None
        if pretrained_path is not None:
            self.checkpoint_report = load_timm_state_dict(model, pretrained_path)
        for p in model.parameters():
            p.requires_grad_(False)

        method_cfg = dict(method)
        method_cfg['tasks'] = tasks
        built = MODELS.build(method_cfg)
        if not isinstance(built, ConvTaskMethod):
            raise TypeError(f"ConvMultiTaskBackbone: method type {method['type']!r} built a "
                            f'{type(built).__name__}, expected a ConvTaskMethod '
                            '(ModulationAdapter, DepthwiseSharing)')
        self.method = built
        built.attach(model)
        params = dict(model.named_parameters())
        names = built.backbone_trainable_names()
        unknown = sorted(n for n in names if n not in params)
        if unknown:
            raise RuntimeError(f'{type(built).__name__} asked to train unknown backbone '
                               f'parameters {unknown[:5]}')
        for n in names:
            params[n].requires_grad_(True)
        self.out_channels: List[int] = [int(c) for c in model.feature_info.channels()]

    def init_weights(self) -> None:
        """Keep the (pretrained) base weights and the method's identity init."""
        self._is_init = True

    def task_indices(self, tasks: Optional[Sequence[str]]) -> List[int]:
        if tasks is None:
            return list(range(len(self.tasks)))
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown or not tasks:
            raise KeyError(f'ConvMultiTaskBackbone: tasks {list(tasks)} must be a non-empty '
                           f'subset of {self.tasks}')
        return [self.tasks.index(t) for t in tasks]

    def forward(self, x: Tensor, tasks: Optional[Sequence[str]] = None) -> Dict[str, List[Tensor]]:
        """``{task: [f4, f8, f16, f32]}`` for ``tasks`` (default: all)."""
        if x.dim() != 4:
            raise ValueError(f'ConvMultiTaskBackbone: expected images (B, C, H, W), got '
                             f'{tuple(x.shape)}')
        names = self.tasks if tasks is None else list(tasks)
        idx = self.task_indices(tasks)
        n = len(idx)
        with self.method.streams(idx):
            feats = self.model(x.repeat_interleave(n, dim=0) if n > 1 else x)
        b = x.shape[0]
        per_level = [f.unflatten(0, (b, n)).unbind(1) for f in feats]
        return {t: [lvl[i] for lvl in per_level] for i, t in enumerate(names)}

    # ----------------------------------------------------------- reporting
    def param_groups_report(self) -> dict:
        """Parameter counts, with the keys of ``AdaptedBackbone.param_groups_report``.

        ``per_task_trainable`` counts parameters used by one task only;
        ``per_task_owned`` the parameters indexed by each task (with the soft-sharing
        gate, a task's depthwise bank is owned by it but read by every task).
        Percentages are relative to the wrapped timm model.
        """
        def n(params) -> int:
            return int(sum(p.numel() for p in params))

        backbone = list(self.model.parameters())
        method_own = list(self.method.parameters())
        trainable = [p for p in self.parameters() if p.requires_grad]
        per_task = self.method.task_param_counts()
        adapt_trainable = n(trainable)
        backbone_total = n(backbone)
        return dict(
            method=type(self.method).__name__,
            tasks=list(self.tasks),
            total=n(self.parameters()),
            trainable=adapt_trainable,
            backbone_total=backbone_total,
            backbone_trainable=n(p for p in backbone if p.requires_grad),
            backbone_copies_total=0,
            method_total=n(method_own),
            method_trainable=n(p for p in method_own if p.requires_grad),
            method_expected=self.method.expected_num_params(),
            neck_total=0,
            neck_trainable=0,
            shared_trainable=adapt_trainable - sum(per_task.values()),
            per_task_trainable=per_task,
            per_task_owned=self.method.task_owned_counts(),
            trainable_percent_of_backbone=100.0 * adapt_trainable / max(backbone_total, 1),
        )

    @torch.no_grad()
    def macs_report(self, img_size: Tuple[int, int] = (224, 224)) -> dict:
        """Multiply-accumulates of the convs for one image, base vs. adapted.

        ``base``: the frozen network alone (one stream); ``per_task``: one task's
        stream (its convs, plus the method's per-image extra work); ``per_forward``:
        work paid once per forward whatever the batch (modulated weights);
        ``all_tasks``: ``T * per_task`` (every stream, one image).
        """
        base = 0
        extra_img = 0
        extra_fwd = 0
        handles = []

        def hook(slot: ConvSlot, inputs, output) -> None:
            nonlocal base, extra_img, extra_fwd
            _, c, h, w = output.shape
            k = slot.kernel_size[0] * slot.kernel_size[1] * slot.in_channels // slot.groups
            base += c * h * w * k
            per_img, per_fwd = self.method.overhead_macs(slot, (c, h, w))
            extra_img += per_img
            extra_fwd += per_fwd

        for slot in self.method._convs.values():
            handles.append(slot.register_forward_hook(hook))
        was_training = self.training
        try:
            self.eval()
            x = torch.zeros(1, 3, *img_size, device=next(self.parameters()).device)
            with self.method.streams([0]):
                self.model(x)
        finally:
            for h in handles:
                h.remove()
            self.train(was_training)
        per_task = base + extra_img
        return dict(img_size=tuple(img_size), base=base, per_task=per_task,
                    per_forward=extra_fwd, all_tasks=len(self.tasks) * per_task)
