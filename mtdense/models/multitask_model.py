"""The multi-task dense prediction model: shared (adapted) backbone + per-task heads."""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel, ModuleDict
from mmengine.structures import PixelData
from torch import Tensor

from mtdense.registry import MODELS
from mtdense.structures import MultiTaskDataSample
from mtdense.tasks import check_tasks, get_task

from .heads.task_batched import ScratchBuffers, can_batch_heads, task_batched_heads_forward

__all__ = ['MultiTaskDenseModel']


DEPTH_ACTIVATIONS = ('none', 'softplus', 'exp')


def _check_task_keys(where: str, mapping: Optional[Mapping], tasks: Sequence[str]) -> dict:
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in tasks]
    if unknown:
        raise KeyError(f'MultiTaskDenseModel: {where} has keys {unknown} that are not in the '
                       f'model tasks {list(tasks)}')
    return mapping


def _check_init_cfg(init_cfg, where: str) -> None:
    """A ``Pretrained`` init whose local file is missing fails now, not when training starts."""
    for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
        if not isinstance(cfg, Mapping):
            continue
        path = cfg.get('checkpoint')
        if (cfg.get('type') == 'Pretrained' and isinstance(path, str) and '://' not in path
                and not os.path.isfile(path)):
            raise FileNotFoundError(f'MultiTaskDenseModel: {where} has init_cfg '
                                    f"type='Pretrained' with checkpoint {path!r}, which does not "
                                    'exist')


def _channels_last_copy(x: Tensor) -> Tensor:
    """``x`` (N, C, H, W) as a channels-last tensor, transposed 8 channels at a time: the
    one-shot copy is several times slower on CPU for power-of-two plane sizes (every
    channel plane maps to the same cache sets)."""
    if x.shape[1] <= 8:
        return x.contiguous(memory_format=torch.channels_last)
    parts = [x[:, i:i + 8].permute(0, 2, 3, 1) for i in range(0, x.shape[1], 8)]
    return torch.cat(parts, dim=3).permute(0, 3, 1, 2)


class _ChannelsLastUpsample(torch.autograd.Function):
    """Bilinear upsampling of a channels-last map whose backward runs on a channels-last
    gradient. The losses hand back NCHW gradients, and the CPU backward kernel on those
    took 8.7 ms for 64 channels at 128 px against 1.1 ms for conversion plus backward;
    forward and gradient values are the same (same kernels)."""

    @staticmethod
    def forward(ctx, x: Tensor, size, align_corners: bool) -> Tensor:
        ctx.in_shape, ctx.size, ctx.align_corners = list(x.shape), list(size), align_corners
        return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=align_corners)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not grad.is_contiguous(memory_format=torch.channels_last):
            grad = _channels_last_copy(grad)
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad, ctx.size, ctx.in_shape, ctx.align_corners, None, None), None, None


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:  # pragma: no cover - torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _upsample(x: Tensor, size, align_corners: bool) -> Tensor:
    """``F.interpolate(x, size, 'bilinear')``; with autograd on a CPU channels-last map
    (the task-batched heads' outputs), through :class:`_ChannelsLastUpsample`."""
    if (x.requires_grad and torch.is_grad_enabled() and x.device.type == 'cpu'
            and x.is_contiguous(memory_format=torch.channels_last) and not _autocast_on()):
        return _ChannelsLastUpsample.apply(x, tuple(size), align_corners)
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=align_corners)


@MODELS.register_module()
class MultiTaskDenseModel(BaseModel):
    """One backbone pass, one head per task.

    ``forward(inputs, data_samples, mode)``:

    * ``'loss'``: dict with ``loss_<task>`` (weighted, summed by mmengine) and the
      unweighted value under ``<task>_unweighted`` (logged only). With
      uncertainty weighting also ``log_var_<task>``.
    * ``'predict'``: the data samples with ``pred_<task>`` at each sample's
      ``eval_shape`` (default ``ori_shape``; the network size under the ``'resized'``
      evaluation protocol) (the valid ``img_shape`` region is cropped from the padded
      batch, un-flipped if the sample was flipped, resized bilinearly):
      seg tasks int64 labels (1, H, W) plus ``logits_<task>`` (C, H, W); saliency
      sigmoid probability (1, H, W); normals unit vectors (3, H, W); depth metres
      (1, H, W), positive (``depth_activation`` then clamped to ``min_depth``).
    * ``'tensor'``: dict task -> raw head output upsampled to the input size.

    Depth: with ``depth_activation='none'`` (default) the head output is trained
    directly with L1 in metres and clamped to ``min_depth`` at prediction; with
    ``'softplus'``/``'exp'`` the activation is applied before the loss too
    (required by ``DepthSiLogLoss``, which takes logs).

    Args:
        backbone: config of a dense backbone returning ``{task: [4 maps]}`` with
            ``out_channels`` and ``tasks`` (e.g. ``AdaptedBackbone``). If it has no
            ``tasks`` key, the model's tasks are filled in.
        tasks: task names (see :mod:`mtdense.tasks`).
        heads: default head config for all tasks; ``in_channels`` and
            ``out_channels`` are filled in.
        head_overrides: ``{task: cfg}``; a cfg without ``type`` or with the default's
            type updates the default, a cfg with another type replaces it.
        losses: ``{task: loss cfg}``; default by task kind (CE, balanced BCE,
            normals L1, depth L1).
        loss_weights: ``{task: w}`` over the defaults (semseg 1, human_parts 2,
            saliency 5, normals 10, depth 1; clones like ``semseg_2`` use their base).
        uncertainty_weighting: learn a log-variance s_t per task (Kendall et al.,
            2018) and use ``0.5 * exp(-s_t) * w_t * L_t + 0.5 * s_t``.
        num_classes: classes of tasks whose channel count comes from the dataset
            (semseg): an int, or ``{task: int}``.
        depth_activation: 'none' | 'softplus' | 'exp'.
        min_depth: floor of predicted depth (metres).
        align_corners: of all bilinear resizes.
        batch_heads: run the heads as single ops over tasks when they allow it
            (identical ``LightMultiScaleHead`` s with plain BN on a backbone with
            ``forward_stacked``, e.g. ``AdaptedBackbone``); the result equals the
            per-task loop to float rounding. False forces the per-task loop.
        data_preprocessor: config or module (default ``MultiTaskDataPreprocessor()``).
        init_cfg: mmengine init config.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 tasks: Sequence[str],
                 heads: dict = dict(type='LightMultiScaleHead', channels=64),
                 head_overrides: Optional[Mapping[str, dict]] = None,
                 losses: Optional[Mapping[str, dict]] = None,
                 loss_weights: Optional[Mapping[str, float]] = None,
                 uncertainty_weighting: bool = False,
                 num_classes: Union[int, Mapping[str, int], None] = None,
                 depth_activation: str = 'none',
                 min_depth: float = 1e-3,
                 align_corners: bool = False,
                 batch_heads: bool = True,
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='MultiTaskDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            # Build through the mtdense registry so no default scope is needed.
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tasks: List[str] = check_tasks(tasks, where='MultiTaskDenseModel.tasks')
        self.task_defs = {t: get_task(t) for t in self.tasks}  # what each task needs
        if depth_activation not in DEPTH_ACTIVATIONS:
            raise ValueError(f'MultiTaskDenseModel: depth_activation must be one of '
                             f'{DEPTH_ACTIVATIONS}, got {depth_activation!r}')
        self.depth_activation = depth_activation
        self.min_depth = float(min_depth)
        self.align_corners = bool(align_corners)

        # Backbone -----------------------------------------------------------
        if isinstance(backbone, dict):
            backbone = copy.deepcopy(backbone)
            backbone.setdefault('tasks', list(self.tasks))
            backbone = MODELS.build(backbone)
        self.backbone = backbone
        bb_tasks = list(getattr(backbone, 'tasks', []) or [])
        if sorted(bb_tasks) != sorted(self.tasks):
            raise ValueError(f'MultiTaskDenseModel: backbone {type(backbone).__name__} serves tasks '
                             f'{bb_tasks} but the model has tasks {self.tasks}; they must match')
        in_channels = list(getattr(backbone, 'out_channels', []) or [])
        if not in_channels:
            raise ValueError(f'MultiTaskDenseModel: backbone {type(backbone).__name__} has no '
                             '`out_channels` list (the pyramid channels the heads need)')

        # Heads --------------------------------------------------------------
        self.num_classes = self._resolve_num_classes(num_classes)
        overrides = _check_task_keys('head_overrides', head_overrides, self.tasks)
        # mmengine's ModuleDict, not torch's: BaseModule.init_weights only visits children that
        # have init_weights, so heads inside a torch ModuleDict never saw their init_cfg
        self.heads = ModuleDict()
        for task in self.tasks:
            out_ch = get_task(task).out_channels(self.num_classes.get(task))
            cfg = copy.deepcopy(dict(heads))
            over = copy.deepcopy(dict(overrides.get(task, {})))
            if 'type' in over and over['type'] != cfg.get('type'):
                cfg = over
            else:
                cfg.update(over)
            if 'out_channels' in cfg and int(cfg['out_channels']) != out_ch:
                raise ValueError(f'MultiTaskDenseModel: head of task {task!r} sets out_channels='
                                 f'{cfg["out_channels"]}, but the task needs {out_ch}; leave it unset')
            cfg['out_channels'] = out_ch
            cfg.setdefault('in_channels', list(in_channels))
            _check_init_cfg(cfg.get('init_cfg'), f'head of task {task!r}')
            self.heads[task] = MODELS.build(cfg)

        # Losses -------------------------------------------------------------
        loss_cfgs = _check_task_keys('losses', losses, self.tasks)
        self.losses = nn.ModuleDict()
        for task in self.tasks:
            cfg = loss_cfgs.get(task, self.task_defs[task].default_loss)
            self.losses[task] = MODELS.build(copy.deepcopy(cfg))
            if (getattr(self.losses[task], 'requires_positive_pred', False)
                    and self.depth_activation == 'none'):
                raise ValueError(f'MultiTaskDenseModel: the loss of task {task!r} '
                                 f'({type(self.losses[task]).__name__}) needs positive predictions; '
                                 "set depth_activation='softplus' or 'exp'")

        weights = _check_task_keys('loss_weights', loss_weights, self.tasks)
        self.loss_weights: Dict[str, float] = {}
        for task in self.tasks:
            w = weights.get(task, self.task_defs[task].default_loss_weight)
            if float(w) < 0:
                raise ValueError(f'MultiTaskDenseModel: loss weight of {task!r} must be >= 0, got {w}')
            self.loss_weights[task] = float(w)

        self.uncertainty_weighting = bool(uncertainty_weighting)
        if self.uncertainty_weighting:
            # s_t = log(sigma_t^2), initialised at 0 (sigma = 1).
            self.task_log_vars = nn.ParameterDict(
                {t: nn.Parameter(torch.zeros(())) for t in self.tasks})
        else:
            self.task_log_vars = None
        self.batch_heads = bool(batch_heads)

    # ------------------------------------------------------------------ setup
    def _resolve_num_classes(self, num_classes) -> Dict[str, int]:
        need = [t for t in self.tasks if get_task(t).num_channels is None]
        if num_classes is None:
            if need:
                raise ValueError(f'MultiTaskDenseModel: tasks {need} need num_classes (the number '
                                 "of classes in the dataset's metainfo)")
            return {}
        if isinstance(num_classes, Mapping):
            mapping = _check_task_keys('num_classes', num_classes, self.tasks)
            missing = [t for t in need if t not in mapping]
            if missing:
                raise ValueError(f'MultiTaskDenseModel: num_classes has no entry for {missing}')
            for t, n in mapping.items():
                fixed = get_task(t).num_channels
                if fixed is not None and int(n) != fixed:
                    raise ValueError(f'MultiTaskDenseModel: task {t!r} has a fixed {fixed} '
                                     f'channels, got num_classes {n}')
            return {t: int(n) for t, n in mapping.items()}
        if int(num_classes) <= 1:
            raise ValueError(f'MultiTaskDenseModel: num_classes must be > 1, got {num_classes}')
        return {t: int(num_classes) for t in need}

    # --------------------------------------------------------------- forward
    def forward(self, inputs: Tensor, data_samples: Optional[List[MultiTaskDataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("MultiTaskDenseModel: mode='loss' needs data_samples")
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"MultiTaskDenseModel: invalid mode {mode!r}; expected 'loss', "
                         "'predict' or 'tensor'")

    def extract_feat(self, inputs: Tensor) -> Dict[str, List[Tensor]]:
        """Backbone features: ``{task: [4 maps]}``."""
        feats = self.backbone(inputs)
        if not isinstance(feats, Mapping):
            raise TypeError(f'MultiTaskDenseModel: backbone {type(self.backbone).__name__} must '
                            f'return a dict task -> feature list, got {type(feats).__name__}')
        missing = [t for t in self.tasks if t not in feats]
        if missing:
            raise KeyError(f'MultiTaskDenseModel: backbone output has no features for {missing} '
                           f'(has {list(feats)})')
        return feats

    def heads_batched(self) -> bool:
        """Whether ``_forward`` runs the heads as single ops over tasks (see ``batch_heads``);
        needs a backbone with ``forward_stacked`` and ``forward(x, stacked=True)``."""
        return (self.batch_heads and hasattr(self.backbone, 'forward_stacked')
                and list(getattr(self.backbone, 'tasks', [])) == self.tasks
                and can_batch_heads([self.heads[t] for t in self.tasks]))

    def _forward(self, inputs: Tensor, data_samples=None) -> Dict[str, Tensor]:
        """Raw head outputs upsampled to the input size: ``{task: (B, C_t, H, W)}``."""
        raw = self._head_outputs(inputs)
        return OrderedDict(zip(self.tasks, self._resize_to(raw, inputs.shape[2:])))

    def _head_outputs(self, inputs: Tensor) -> List[Tensor]:
        """Raw head outputs at the heads' own resolution, in task order."""
        if self.heads_batched():
            feats, stacked = self.backbone(inputs, stacked=True)
            return task_batched_heads_forward([self.heads[t] for t in self.tasks], feats, stacked,
                                              inputs.shape[0], scratch=self._scratch())
        feats = self.extract_feat(inputs)
        return [self.heads[t](feats[t]) for t in self.tasks]

    def _scratch(self) -> ScratchBuffers:
        """Buffers the heads reuse across inference calls on CPU (created on first use, so
        models built or pickled before they existed get them too)."""
        scratch = self.__dict__.get('_scratch_buffers')
        if scratch is None:
            scratch = ScratchBuffers()
            self.__dict__['_scratch_buffers'] = scratch
        return scratch

    def _resize_to(self, outs: List[Tensor], size) -> List[Tensor]:
        """Bilinear resize of every output to ``size``; one interpolation for all tasks
        when they share a resolution, on a channels-last map (much faster on CPU; the
        outputs are channels-last views of it)."""
        size = tuple(size)
        todo = [i for i, o in enumerate(outs) if tuple(o.shape[2:]) != size]
        if not todo:
            return list(outs)
        outs = list(outs)
        if len({tuple(outs[i].shape[2:]) for i in todo}) == 1 and len(todo) > 1:
            widths = [outs[i].shape[1] for i in todo]
            joint = torch.cat([outs[i] for i in todo], dim=1)
            joint = _upsample(joint.contiguous(memory_format=torch.channels_last), size,
                              self.align_corners)
            for i, part in zip(todo, joint.split(widths, dim=1)):
                outs[i] = part
            return outs
        for i in todo:
            outs[i] = _upsample(outs[i], size, self.align_corners)
        return outs

    # ------------------------------------------------------------------ loss
    def loss(self, inputs: Tensor, data_samples: List[MultiTaskDataSample]) -> Dict[str, Tensor]:
        """Weighted per-task losses (``loss_<task>``) plus unweighted values for logging."""
        outs = self._forward(inputs)
        losses: Dict[str, Tensor] = OrderedDict()
        for task in self.tasks:
            key = f'gt_{task}'
            idx = [i for i, s in enumerate(data_samples) if key in s]
            if not idx:
                raise KeyError(f'MultiTaskDenseModel: no sample in the batch has ground truth '
                               f'{key!r} for configured task {task!r}; check the dataset tasks '
                               'and the pipeline')
            target = torch.stack([data_samples[i].get(key).data for i in idx]).to(inputs.device)
            pred = outs[task]
            if len(idx) != len(data_samples):
                # Tasks missing from some samples are skipped for those samples only.
                pred = pred[torch.as_tensor(idx, device=pred.device)]
            if target.shape[2:] != pred.shape[2:]:
                raise ValueError(f'MultiTaskDenseModel: {key} has size {tuple(target.shape[2:])} '
                                 f'but the batch input is {tuple(pred.shape[2:])}; training ground '
                                 'truth must be at network resolution and padded by '
                                 'MultiTaskDataPreprocessor')
            pred = self.task_defs[task].activate(pred, self)  # e.g. depth's softplus / exp
            raw = self.losses[task](pred, target)
            weighted = self.loss_weights[task] * raw
            if self.task_log_vars is not None:
                s = self.task_log_vars[task]
                weighted = 0.5 * torch.exp(-s) * weighted + 0.5 * s
                losses[f'log_var_{task}'] = s.detach()
            losses[f'loss_{task}'] = weighted
            losses[f'{task}_unweighted'] = raw.detach()
        return losses

    # --------------------------------------------------------------- predict
    def predict(self, inputs: Tensor,
                data_samples: Optional[List[MultiTaskDataSample]] = None
                ) -> List[MultiTaskDataSample]:
        """Predictions at each sample's ``ori_shape`` (see the class docstring).

        Each task is upsampled to the input size on its own (:meth:`_resize_task`) into a
        tensor of its own, then cropped, un-flipped, resized and post-processed per sample:
        the cost per task stays that of its own channels. (One joint upsampling of all
        tasks, as ``mode='tensor'`` does, writes a T-proportional buffer — 50 MB for 8
        tasks at 448 px — that glibc maps and page-faults in again on every call, and
        leaves every task's map strided by the others' channels, which made the
        post-processing several times slower.) The values are those of bilinear
        upsampling of each task's head output; ``mode='tensor'`` may differ from them in the
        last bit where its joint upsampling vectorises channels differently.
        """
        raw = self._head_outputs(inputs)
        batch_size, _, in_h, in_w = inputs.shape
        if data_samples is None:
            data_samples = [
                MultiTaskDataSample(metainfo=dict(ori_shape=(in_h, in_w), img_shape=(in_h, in_w)))
                for _ in range(batch_size)
            ]
        if len(data_samples) != batch_size:
            raise ValueError(f'MultiTaskDenseModel: {batch_size} inputs but {len(data_samples)} '
                             'data samples')
        layout = []  # per sample: valid region, evaluation size, flip
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            img_h, img_w = meta.get('img_shape', (in_h, in_w))[:2]
            # eval_shape: where the metric compares (MTTestResize's protocol); by default
            # the original image size
            ori_h, ori_w = meta.get('eval_shape', meta.get('ori_shape', (img_h, img_w)))[:2]
            if img_h > in_h or img_w > in_w:
                raise ValueError(f'MultiTaskDenseModel: img_shape {(img_h, img_w)} of sample {i} '
                                 f'exceeds the batch input {(in_h, in_w)}')
            flip_dir = meta.get('flip_direction') if meta.get('flip', False) else None
            layout.append(((img_h, img_w), (ori_h, ori_w), flip_dir))
        for task, out_t in zip(self.tasks, raw):
            full = self._resize_task(out_t, (in_h, in_w))
            for i, (sample, (img_hw, ori, flip_dir)) in enumerate(zip(data_samples, layout)):
                img_h, img_w = img_hw
                out = full[i:i + 1, :, :img_h, :img_w]
                out = self._unflip(out, flip_dir, task)
                if (img_h, img_w) != tuple(ori):
                    out = F.interpolate(out, size=tuple(ori), mode='bilinear',
                                        align_corners=self.align_corners)
                # ``full`` (and what was derived from it) belongs to this call alone: the
                # activations may run in place
                self._set_prediction(sample, task, out[0], in_place=True)
        return data_samples

    def _resize_task(self, out: Tensor, size) -> Tensor:
        """One task's head output bilinearly upsampled to ``size`` (a new tensor; the input
        itself if it is already at ``size``)."""
        if tuple(out.shape[2:]) == tuple(size):
            return out
        return F.interpolate(out, size=tuple(size), mode='bilinear',
                             align_corners=self.align_corners)

    @staticmethod
    def _unflip(out: Tensor, direction: Optional[str], task: str) -> Tensor:
        """Undo a test-time flip of the input on a (1, C, H, W) output of ``task``: positions
        here, values (e.g. the normals' flipped component) by the task's definition."""
        if direction is None:
            return out
        dims = {'horizontal': [3], 'vertical': [2], 'diagonal': [2, 3]}.get(direction)
        if dims is None:
            raise ValueError(f'MultiTaskDenseModel: unknown flip_direction {direction!r}')
        return get_task(task).unflip_values(out.flip(dims), dims)

    def _set_prediction(self, sample: MultiTaskDataSample, task: str, out: Tensor,
                        in_place: bool = False) -> None:
        """``pred_<task>`` (and e.g. ``logits_<task>``) from the task's post-processing.

        ``in_place``: ``out`` belongs to the caller's call alone (no autograd, not a view
        of anything the caller returns), so the task's activation may overwrite it
        (:meth:`BaseTask.predictions_in_place`) instead of allocating another
        full-resolution map. Values are the same either way.
        """
        in_place = in_place and not (torch.is_grad_enabled() and out.requires_grad)
        task_def = self.task_defs[task]
        fields = (task_def.predictions_in_place(out, self) if in_place
                  else task_def.predictions(out, self))
        sample.set_pred(task, fields.pop('pred'))
        for name, data in fields.items():
            sample.set_field(PixelData(data=data), f'{name}_{task}', dtype=PixelData)

    # ---------------------------------------------------------- bookkeeping
    def parameter_report(self) -> Dict[str, object]:
        """Parameter counts: total / trainable, per component and per task.

        The backbone's own breakdown (``param_groups_report()``, if it has one)
        is included under ``'backbone_report'``.
        """
        def count(module_or_params, trainable_only=False):
            params = (module_or_params.parameters() if isinstance(module_or_params, nn.Module)
                      else module_or_params)
            return sum(p.numel() for p in params if p.requires_grad or not trainable_only)

        report: Dict[str, object] = OrderedDict()
        report['total'] = count(self)
        report['trainable'] = count(self, True)
        report['backbone_total'] = count(self.backbone)
        report['backbone_trainable'] = count(self.backbone, True)
        report['heads'] = {t: {'total': count(self.heads[t]), 'trainable': count(self.heads[t], True)}
                           for t in self.tasks}
        report['losses_trainable'] = count(self.losses, True) + (
            count(self.task_log_vars.values(), True) if self.task_log_vars is not None else 0)
        report['data_preprocessor'] = count(self.data_preprocessor)
        if hasattr(self.backbone, 'param_groups_report'):
            report['backbone_report'] = self.backbone.param_groups_report()
        return report
