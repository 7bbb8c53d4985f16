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
image batch is repeated once per task, task-major (the convention of
:mod:`mtdense.models.petl.stacking`), so the tensor flowing through the
unmodified timm forward is ``(T*B, C, H, W)`` with row ``t*B + b``. The method
(:class:`~mtdense.models.petl.ConvTaskMethod`) has replaced the convs and
BatchNorms of the timm model by slots that keep the timm parameters and
state-dict keys and run per-task layers as one grouped op over all streams (see
:mod:`mtdense.models.petl.conv`). The backbone owns the
:class:`~mtdense.models.petl.TaskStreams` the slots read the active tasks from;
the method's own parameters live in the method module (``method.*`` keys).
Pretrained weights are loaded into the unmodified timm model before that.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.checkpoint import read_state_dict
from mtdense.models.petl import (ConvSlot, ConvTaskMethod, TaskStreams, build_method, repeat_tasks,
                                 unstack_tasks)
from mtdense.registry import MODELS

__all__ = ['ConvMultiTaskBackbone', 'build_timm_features', 'load_timm_state_dict']

_STRIDES = [4, 8, 16, 32]


def load_timm_state_dict(model: nn.Module, path: str) -> dict:
    """Load a timm (full-model) state dict into a ``features_only`` timm model.

    Keys of modules the features model does not have (classifier, head conv,
    ``fc``, stages after the last output) are skipped and reported; a missing
    key, an unexpected key inside a module the model has, or a shape mismatch
    raises an error naming the file and key.
    """
    state = read_state_dict(path)
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


def build_timm_features(backbone: Mapping, owner: str) -> Tuple[nn.Module, str, Optional[dict]]:
    """A ``features_only`` timm CNN with strides 4..32 from a ``backbone`` dict, weights loaded.

    ``backbone``: ``dict(model_name=..., pretrained_path=None, out_indices=(1, 2, 3, 4),
    **timm_kwargs)``. Returns ``(model, model_name, checkpoint_report)``.
    """
    import timm
    if not isinstance(backbone, Mapping) or 'model_name' not in backbone:
        raise TypeError(f'{owner}: backbone must be a dict with model_name '
                        f'(a timm CNN such as mobilenetv2_100, resnet18), got {backbone!r}')
    cfg = dict(backbone)
    model_name = cfg.pop('model_name')
    pretrained_path = cfg.pop('pretrained_path', None)
    out_indices = tuple(cfg.pop('out_indices', (1, 2, 3, 4)))
    for key in ('pretrained', 'features_only'):
        if key in cfg:
            raise ValueError(f'{owner}: backbone.{key} is fixed (pretrained=False: weights come '
                             'from pretrained_path; features_only=True)')
    try:
        model = timm.create_model(model_name, pretrained=False, features_only=True,
                                  out_indices=out_indices, **cfg)
    except RuntimeError as e:
        raise ValueError(f'{owner}: timm cannot build {model_name!r} with '
                         f'features_only=True: {e}') from e
    strides = list(model.feature_info.reduction())
    if strides != _STRIDES:
        raise ValueError(f'{owner}: {model_name} with out_indices={out_indices} '
                         f'gives strides {strides}, expected {_STRIDES}')
    report = load_timm_state_dict(model, pretrained_path) if pretrained_path is not None else None
    return model, model_name, report


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

        model, self.model_name, self.checkpoint_report = build_timm_features(
            backbone, 'ConvMultiTaskBackbone')
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)

        built = build_method(method, tasks, ConvTaskMethod, 'ConvMultiTaskBackbone: method',
                             'a ConvTaskMethod (ModulationAdapter, DepthwiseSharing)')
        self.method = built
        #: which task streams run (read by the method's slots); owned here
        self.streams = TaskStreams(len(tasks))
        built.attach(model, self.streams)
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
        with self.streams.use(idx, 'ConvMultiTaskBackbone'):
            feats = self.model(repeat_tasks(x, n) if n > 1 else x)
        per_level = [unstack_tasks(f, n) for f in feats]
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
            with self.streams.use([0], 'ConvMultiTaskBackbone'):
                self.model(x)
        finally:
            for h in handles:
                h.remove()
            self.train(was_training)
        per_task = base + extra_img
        return dict(img_size=tuple(img_size), base=base, per_task=per_task,
                    per_forward=extra_fwd, all_tasks=len(self.tasks) * per_task)
