"""Core of the convolutional PETL family: per-task methods for timm CNNs.

:meth:`ConvTaskMethod.attach` replaces every ``nn.Conv2d`` and BatchNorm of a
timm model by a *slot* (:class:`ConvSlot`, :class:`NormSlot`) that holds the very
same parameter and buffer objects under the same names (timm state-dict keys are
unchanged). A slot does not know the method: it holds

* the :class:`~mtdense.models.petl.stacking.TaskStreams` of its backbone (which
  task streams are stacked in its input, task-major ``(T'*B, C, H, W)``), and
* a *kernel* set by the method for that layer, or none (the base layer, shared by
  all streams). A conv kernel has ``conv_streams(slot, x, active)``, a norm kernel
  ``forward_tasks(x, active)`` (:class:`TaskBatchNorm`); kernels are the method's
  per-layer parameter modules (``method.*`` state-dict keys) or plain objects over
  them.

A per-task conv runs as one grouped conv with ``groups * T'`` groups over the
tasks' stacked weights on the channel stack ``(B, T'*C, H, W)``
(:func:`~mtdense.models.petl.stacking.tasks_to_channels`); a per-task BatchNorm as
one ``BatchNorm2d(T*C)`` there (its batch statistics are then per task). Shared
convs and shared frozen BNs run on the task-major stack as usual; activations,
residual adds and pooling are per sample and need no change.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .stacking import TaskStreams, channels_to_tasks, tasks_to_channels

__all__ = ['ConvTaskMethod', 'ConvSlot', 'NormSlot', 'TaskBatchNorm', 'NORM_MODES', 'safe_key',
           'is_batchnorm']

#: ``'task'``: per-task BatchNorm (affine + statistics, trained, initialised from
#: the base BN; the multi-domain convention); ``'frozen'``: the base BN shared by
#: all tasks, always with its running statistics (never updated).
NORM_MODES = ('task', 'frozen')


def safe_key(name: str) -> str:
    """Module path -> ``nn.ModuleDict`` key ('.' is not allowed there)."""
    return name.replace('.', '__')


class ConvSlot(nn.Module):
    """Stands in for one ``nn.Conv2d`` of the timm model.

    Holds the original ``weight``/``bias`` parameters under their original names,
    the backbone's :class:`TaskStreams` and the layer's kernel (both unregistered,
    so nothing is saved twice); without a kernel it is the shared base conv.
    """

    def __init__(self, conv: nn.Conv2d, name: str, streams: TaskStreams, owner: str) -> None:
        super().__init__()
        # Subclasses of Conv2d (timm Conv2dSame, ...) change the forward: not supported.
        if type(conv) is not nn.Conv2d:
            raise TypeError(f'{owner}: {name} is a {type(conv).__name__}; only '
                            'plain nn.Conv2d layers can be adapted per task')
        if conv.padding_mode != 'zeros':
            raise ValueError(f'{owner}: {name} uses padding_mode='
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
        object.__setattr__(self, '_streams', streams)
        object.__setattr__(self, '_kernel', None)

    def set_kernel(self, kernel) -> None:
        """Run ``kernel.conv_streams(self, x, active)`` instead of the base conv."""
        object.__setattr__(self, '_kernel', kernel)

    @property
    def kernel(self):
        return self.__dict__['_kernel']

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
        """The original (shared) conv on the task-major ``(T*B, C, H, W)`` stack."""
        return self.conv(x, self.weight, self.bias, self.groups)

    def split(self, x: Tensor) -> Tuple[int, int]:
        """Check ``x`` is the stack of the active streams; ``(B, T')``."""
        return self._streams.split(x, self.in_channels, self.name)

    def task_conv(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        """One grouped conv over the active streams' stacked ``weight`` (``T'*out`` filters).

        ``x`` is the task-major stack ``(T'*B, C, H, W)``; it runs on the channel stack
        ``(B, T'*C, H, W)`` with ``groups * T'`` groups, the result is task-major again.
        """
        _, n = self.split(x)
        y = self.conv(tasks_to_channels(x, n), weight, bias, self.groups * n)
        return channels_to_tasks(y, n)

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.__dict__['_kernel']
        if kernel is None:
            return self.base_forward(x)
        return kernel.conv_streams(self, x, self._streams.active)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, groups={self.groups}, bias={self.bias is not None}')


class NormSlot(nn.Module):
    """Stands in for one BatchNorm (``nn.BatchNorm2d`` or timm ``BatchNormAct2d``).

    Keeps the original parameters/buffers under their names and, for
    ``BatchNormAct2d``, its ``drop`` and ``act`` submodules (applied after the norm,
    as timm does).
    """

    def __init__(self, bn: nn.BatchNorm2d, name: str, streams: TaskStreams, owner: str) -> None:
        super().__init__()
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
        object.__setattr__(self, '_streams', streams)
        object.__setattr__(self, '_kernel', None)

    def set_kernel(self, kernel) -> None:
        """Run ``kernel.forward_tasks(x, active)`` (a :class:`TaskBatchNorm`) instead."""
        object.__setattr__(self, '_kernel', kernel)

    def base_forward(self, x: Tensor) -> Tensor:
        """The frozen base BN: always its running statistics."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)

    def forward(self, x: Tensor) -> Tensor:
        kernel = self.__dict__['_kernel']
        x = self.base_forward(x) if kernel is None else kernel.forward_tasks(
            x, self._streams.active)
        return self.act(self.drop(x))

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def is_batchnorm(m: nn.Module) -> bool:
    # exact BatchNorm2d or timm's BatchNormAct2d (a BatchNorm2d subclass that adds drop/act)
    if type(m) is nn.BatchNorm2d:
        return True
    return isinstance(m, nn.BatchNorm2d) and type(m).__name__ == 'BatchNormAct2d'


class TaskBatchNorm(nn.BatchNorm2d):
    """T independent BatchNorms over C channels, stored as one ``BatchNorm2d(T*C)``.

    Input/output: the task-major stack ``(T'*B, C, H, W)`` of ``T'`` active tasks
    (row ``t*B + b``). A contiguous range of tasks: one batch-norm call on the
    channel stack ``(B, T'*C)`` with the matching slice of the parameters and
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
        xs = tasks_to_channels(x, n)
        if list(active) == list(range(active[0], active[0] + n)):
            return channels_to_tasks(self._bn(xs, active[0], active[0] + n), n)
        xs = xs.reshape(b, n, c, h, w)
        y = torch.stack([self._bn(xs[:, i], t, t + 1) for i, t in enumerate(active)], 1)
        return channels_to_tasks(y.reshape(b, n * c, h, w), n)

    @staticmethod
    def num_params(num_tasks: int, channels: int) -> int:
        return 2 * num_tasks * channels


class ConvTaskMethod(nn.Module):
    """Base of per-task methods for CNNs (see the module docstring for the layout).

    Subclasses implement :meth:`_build_conv` (create parameters for one conv slot and
    give it a kernel, or leave it shared), :meth:`expected_num_params` and the per-task
    counts; :meth:`conv_forward` runs one slot on the active streams.

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
        self._convs: Dict[str, ConvSlot] = {}
        self._norms: Dict[str, NormSlot] = {}
        self._streams: Optional[TaskStreams] = None

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def streams(self) -> TaskStreams:
        """The :class:`TaskStreams` of the backbone this method is attached to."""
        if self._streams is None:
            raise RuntimeError(f'{type(self).__name__} is not attached to a backbone')
        return self._streams

    @property
    def active(self) -> List[int]:
        """Indices of the tasks whose streams are running."""
        return self.streams.active

    # ------------------------------------------------------------- attaching
    def attach(self, model: nn.Module, streams: TaskStreams) -> None:
        """Replace the convs and BatchNorms of ``model`` by slots; create parameters.

        ``streams`` is owned by the backbone; the slots read the active tasks from it.
        """
        if self._streams is not None:
            raise RuntimeError(f'{type(self).__name__} is already attached')
        if streams.num_tasks != self.num_tasks:
            raise ValueError(f'{type(self).__name__}: streams for {streams.num_tasks} tasks, '
                             f'the method has {self.num_tasks}')
        owner = type(self).__name__
        replace: List[Tuple[str, nn.Module]] = []
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) or is_batchnorm(m):
                replace.append((name, m))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) or type(m).__name__ in (
                    'Conv2dSame', 'CondConv2d'):
                raise TypeError(f'{owner}: {name} is a {type(m).__name__}, which '
                                'cannot be adapted per task (BatchNorm2d/BatchNormAct2d and '
                                'plain Conv2d only)')
        if not any(isinstance(m, nn.Conv2d) for _, m in replace):
            raise ValueError(f'{owner}: the backbone has no nn.Conv2d layers')
        for name, m in replace:
            parent_name, _, leaf = name.rpartition('.')
            parent = model.get_submodule(parent_name) if parent_name else model
            if isinstance(m, nn.Conv2d):
                slot = ConvSlot(m, name, streams, owner)
                self._convs[name] = slot
            else:
                slot = NormSlot(m, name, streams, owner)
                self._norms[name] = slot
            setattr(parent, leaf, slot)
        self._streams = streams
        for slot in self._convs.values():
            self._build_conv(slot)
        if self.norm == 'task':
            for name, slot in self._norms.items():
                self.task_norms[safe_key(name)] = TaskBatchNorm(self.num_tasks, slot)
                slot.set_kernel(self.task_norms[safe_key(name)])

    def _build_conv(self, slot: ConvSlot) -> None:
        raise NotImplementedError

    # --------------------------------------------------------------- forward
    def conv_forward(self, slot: ConvSlot, x: Tensor) -> Tensor:
        """``slot`` on the task-major stack ``x`` of the active streams."""
        return slot(x)

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
