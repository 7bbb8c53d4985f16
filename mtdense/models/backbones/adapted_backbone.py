"""``AdaptedBackbone``: a wrapped mmseg/timm transformer + one PETL method.

Usage::

    backbone = dict(
        type='AdaptedBackbone',
        backbone=dict(type='MMSegSwin', embed_dims=96, depths=(2, 2, 6, 2),
                      num_heads=(3, 6, 12, 24), window_size=7),
        peft=dict(type='VMTAdapter'),          # or VMTAdapterLite, FullFineTune, ...
        tasks=['semseg', 'human_parts', 'saliency', 'normals'],
        checkpoint='swin_tiny_patch4_window7_224.pth')   # official / timm / mmseg keys

``forward(x)`` returns ``{task: [4 maps]}`` (NCHW; strides 4/8/16/32: the host's
levels, or the ViT neck's); methods with one shared stream give every task the same
list objects. A method may read another pyramid of the host: if it defines
``pyramid_levels(host) -> [LevelRef]`` those are the outputs (MTLoRA: each stage
*after* its patch merging, strides 8/16/32/32). Any 4-level pyramid whose strides
are powers of two, non-decreasing and at most doubling from level to level is
accepted: the heads fuse the levels at the first one's size and the model resizes
their outputs to the input.

Order of construction: build the host, load the checkpoint into the *unmodified*
backbone (so official/timm/mmseg keys load unchanged), freeze every backbone
parameter, attach the method (which creates its parameters and hooks and says
which backbone parameters it trains), apply the norm / rel-pos / patch-embed
switches, build the neck (single-scale ViTs).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from mtdense.models.petl import BackboneHost, BasePEFTMethod, LevelRef, build_method
from mtdense.registry import MODELS
from .checkpoint import load_backbone_checkpoint


def _check_strides(strides: Sequence[int], what: str) -> None:
    """A pyramid the heads can fuse: strides are powers of two, non-decreasing, and at
    most double from one level to the next (4/8/16/32; MTLoRA's 8/16/32/32)."""
    ok = all(s >= 1 and s & (s - 1) == 0 for s in strides)
    ok = ok and all(b in (a, 2 * a) for a, b in zip(strides, strides[1:]))
    if not ok:
        raise ValueError(f'AdaptedBackbone: {what} gives a pyramid with strides {list(strides)}; '
                         'expected powers of two, non-decreasing, each at most twice the previous '
                         '(e.g. [4, 8, 16, 32])')


@MODELS.register_module()
class AdaptedBackbone(BaseModule):
    """A backbone host + a parameter-efficient method behind one config key.

    Args:
        backbone: host config: ``MMSegSwin``, ``MMSegViT``, ``TimmSwin``, ``TimmViT``.
        peft: method config, e.g. ``dict(type='VMTAdapter', bottleneck=32)``.
        tasks: task names; order fixes the task index of per-task parameters.
        neck: neck config for single-scale backbones; None: the host's default
            (ViT: mmseg ``MultiLevelNeck`` to strides 4/8/16/32; Swin: no neck).
        checkpoint: path of backbone weights (``.pth``/``.pt``/``.bin`` read with
            ``torch.load(weights_only=True)``, or ``.safetensors``).
        checkpoint_format: 'auto' | 'official' | 'timm' | 'mmseg'.
    """

    def __init__(self,
                 backbone: dict,
                 peft: dict,
                 tasks: Sequence[str],
                 neck: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 checkpoint_format: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise TypeError(
                f'AdaptedBackbone: backbone must be a config dict with a type, got {backbone!r}')
        if not isinstance(peft, dict) or 'type' not in peft:
            raise TypeError(
                f'AdaptedBackbone: peft must be a config dict with a type, got {peft!r}')
        tasks = list(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(
                f'AdaptedBackbone: tasks must be a non-empty list of unique names, got {tasks}')
        if 'tasks' in peft and list(peft['tasks']) != tasks:
            raise ValueError(
                f"AdaptedBackbone: peft['tasks']={peft['tasks']} differs from tasks={tasks}")
        self.tasks: List[str] = tasks

        host = MODELS.build(dict(backbone))
        if not isinstance(host, BackboneHost):
            raise TypeError(f"AdaptedBackbone: backbone type {backbone['type']!r} built a "
                            f'{type(host).__name__}, expected a BackboneHost (MMSegSwin, MMSegViT, '
                            'TimmSwin, TimmViT)')
        self.host = host
        self.checkpoint_report: Optional[dict] = None
        if checkpoint is not None:
            self.checkpoint_report = load_backbone_checkpoint(host, checkpoint, checkpoint_format)
        else:
            host.init_backbone_weights()

        for p in host.backbone.parameters():
            p.requires_grad_(False)
        method = build_method(peft, tasks, BasePEFTMethod, 'AdaptedBackbone: peft',
                              'a PETL method (BasePEFTMethod)')
        self.peft = method
        method.attach(host)
        self._apply_freezing()

        if neck is None:
            neck = host.default_neck()
        self.neck = MODELS.build(dict(neck)) if neck is not None else None
        if self.neck is not None:
            if hasattr(self.neck, 'init_weights'):
                self.neck.init_weights()
            num_outs = getattr(self.neck, 'num_outs', None)
            out_ch = getattr(self.neck, 'out_channels', None)
            if num_outs is None or out_ch is None:
                raise TypeError(f'AdaptedBackbone: neck {type(self.neck).__name__} must expose '
                                'num_outs and out_channels (like mmseg MultiLevelNeck)')
            out_ch = list(out_ch) if isinstance(out_ch, (list, tuple)) else [out_ch] * num_outs
            self.out_channels: List[int] = out_ch
        else:
            levels = self.pyramid_levels()
            self.out_channels = [lv.channels for lv in levels]
            _check_strides([lv.stride for lv in levels],
                           f'{type(host).__name__} + {type(method).__name__}')
        if len(self.out_channels) != 4:
            raise ValueError(f'AdaptedBackbone: the backbone{" + neck" if self.neck else ""} gives '
                             f'{len(self.out_channels)} levels, expected 4')

    def pyramid_levels(self) -> List[LevelRef]:
        """The levels the method outputs before any neck: ``peft.pyramid_levels(host)``
        when the method defines it, else the host's levels."""
        own = getattr(self.peft, 'pyramid_levels', None)
        return list(own(self.host)) if own is not None else list(self.host.levels)

    # ------------------------------------------------------------ freezing
    def _apply_freezing(self) -> None:
        host, method = self.host, self.peft
        names = set(method.backbone_trainable_names(host))
        if method.train_norms:
            norms = set(host.norm_param_names())
            if not getattr(method, 'uses_output_norms', True):
                # e.g. MTLoRA reads the post-merge stage outputs: norm{i} never runs
                norms -= set(host.output_norm_param_names())
            names |= norms
        if method.train_rel_pos:
            rel = host.rel_pos_param_names()
            if not rel:
                raise ValueError(
                    f'{type(method).__name__}: train_rel_pos=True but the backbone has '
                    'no relative position bias tables')
            names |= set(rel)
        if method.train_patch_embed:
            names |= set(host.patch_embed_param_names())
        params = dict(host.backbone.named_parameters())
        unknown = sorted(n for n in names if n not in params)
        if unknown:
            raise RuntimeError(
                f'{type(method).__name__} asked to train unknown backbone parameters '
                f'{unknown[:5]}')
        for n in names:
            params[n].requires_grad_(True)
        for copy in method.extra_backbones():
            # per-task copies (single-task fine-tuning) are whole trainable backbones
            for p in copy.parameters():
                p.requires_grad_(True)

    def init_weights(self) -> None:
        """Re-initialise the neck only.

        The wrapped backbone keeps its (checkpoint or from-scratch) weights and the
        method its identity-preserving init; mmseg's ``SwinTransformer.init_weights``
        would otherwise overwrite loaded weights.
        """
        if self.neck is not None and hasattr(self.neck, 'init_weights'):
            self.neck.init_weights()
        self._is_init = True

    # -------------------------------------------------------------- forward
    def forward(self, x: Tensor, stacked: bool = False):
        """``{task: [4 maps]}``; with ``stacked=True`` the unsplit pyramid of
        :meth:`forward_stacked` (through ``__call__``, so module hooks still fire)."""
        if stacked:
            return self.forward_stacked(x)
        feats, flags = self.forward_stacked(x)
        num_tasks = len(self.tasks)
        if not any(flags):
            return {t: feats for t in self.tasks}
        per_level = [
            f.unflatten(0, (num_tasks, -1)).unbind(0) if flag else None
            for f, flag in zip(feats, flags)
        ]
        return {
            t: [per_level[i][k] if flags[i] else feats[i] for i in range(len(feats))]
            for k, t in enumerate(self.tasks)
        }

    def forward_stacked(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        """The pyramid before it is split by task: per level a ``(T * B, C, h, w)``
        map stacked task-major (flag True) or a ``(B, C, h, w)`` map shared by all
        tasks (flag False). Lets task-batched heads skip the split."""
        feats, flags = self.peft(x)
        num_tasks = len(self.tasks)
        if self.neck is not None:
            if any(flags):
                # the neck runs once on every task's features stacked along the batch
                feats = [
                    f if flag else f.repeat(num_tasks, 1, 1, 1) for f, flag in zip(feats, flags)
                ]
                flags = [True] * len(feats)
            feats = list(self.neck(feats))
            flags = [any(flags)] * len(feats)
        return list(feats), list(flags)

    # ----------------------------------------------------------- reporting
    def param_groups_report(self) -> dict:
        """Parameter counts: totals, trainable, backbone, method, neck, per task.

        ``per_task_trainable`` counts parameters used by one task only; everything
        else trainable is shared. Percentages are relative to one copy of the wrapped
        backbone (``backbone_total``), excluding the neck.
        """

        def n(params) -> int:
            return int(sum(p.numel() for p in params))

        backbone = list(self.host.backbone.parameters())
        copies = [p for c in self.peft.extra_backbones() for p in c.parameters()]
        copy_ids = {id(p) for p in copies}
        method_own = [p for p in self.peft.parameters() if id(p) not in copy_ids]
        neck = list(self.neck.parameters()) if self.neck is not None else []
        everything = list(self.parameters())
        trainable = [p for p in everything if p.requires_grad]
        per_task = dict(self.peft.task_param_counts())
        for t, extra in self.peft_backbone_task_counts().items():
            per_task[t] = per_task.get(t, 0) + extra
        backbone_total = n(backbone)
        adapt_trainable = n(p for p in trainable) - n(p for p in neck if p.requires_grad)
        return dict(
            method=type(self.peft).__name__,
            tasks=list(self.tasks),
            total=n(everything),
            trainable=n(trainable),
            backbone_total=backbone_total,
            backbone_trainable=n(p for p in backbone if p.requires_grad),
            backbone_copies_total=n(copies),
            method_total=n(method_own),
            method_trainable=n(p for p in method_own if p.requires_grad),
            method_expected=self.peft.expected_num_params(),
            neck_total=n(neck),
            neck_trainable=n(p for p in neck if p.requires_grad),
            shared_trainable=adapt_trainable - sum(per_task.values()),
            per_task_trainable=per_task,
            trainable_percent_of_backbone=100.0 * adapt_trainable / max(backbone_total, 1),
        )

    def peft_backbone_task_counts(self) -> Dict[str, int]:
        """Per-task counts of trainable backbone copies (per-task fine-tuning)."""
        counter = getattr(self.peft, 'backbone_task_counts', None)
        return counter() if counter is not None else {}
