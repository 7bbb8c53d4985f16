"""Use any mmseg decode head (``BaseDecodeHead`` subclass) as a task head."""
from __future__ import annotations

import copy
import warnings
from typing import List, Optional, Sequence

import mmseg.models  # noqa: F401  (fills mmseg's MODELS, the parent of mtdense's)
from mmengine.model import BaseModule
from torch import Tensor

from mtdense.registry import MODELS

from .light_head import check_pyramid

__all__ = ['MMSegHeadAdapter']


@MODELS.register_module()
class MMSegHeadAdapter(BaseModule):
    """Wrap an mmseg decode head so it predicts ``out_channels`` maps for one task.

    The wrapped head gets ``in_channels`` (all pyramid levels unless the config
    sets ``in_index``), ``num_classes = out_channels = out_channels`` (mmseg's
    ``conv_seg`` gives the task's channels: C classes, 1 saliency logit, 3 normal
    components, 1 depth value) and, for a single channel, a ``threshold`` so
    mmseg does not warn. Only ``forward`` is used (``forward(inputs) ->
    cls_seg(...)``); the mmseg head's own loss/predict are bypassed because the
    multi-task model applies task losses and postprocessing.

    Works without compiled mmcv ops for heads built from plain convs/pooling
    (e.g. ``UPerHead``, ``FCNHead``, ``ASPPHead``, ``SegformerHead``).

    Args:
        in_channels: pyramid channels (the backbone's ``out_channels``).
        out_channels: prediction channels of the task.
        head: mmseg head config, e.g. ``dict(type='UPerHead', channels=256)``.
        init_cfg: mmengine init config of the wrapper (the inner head keeps its own).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, head: dict,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(head, dict) or 'type' not in head:
            raise TypeError(f'MMSegHeadAdapter: head must be a config dict with a "type", got {head!r}')
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = int(out_channels)
        cfg = copy.deepcopy(head)
        for key in ('num_classes', 'out_channels'):
            if key in cfg and int(cfg[key]) != self.out_channels:
                raise ValueError(f'MMSegHeadAdapter: head {key}={cfg[key]} conflicts with the '
                                 f'task\'s {self.out_channels} output channels; leave it unset')
        cfg['num_classes'] = self.out_channels
        cfg['out_channels'] = self.out_channels
        if self.out_channels == 1:
            cfg.setdefault('threshold', 0.5)
        if 'in_index' not in cfg:
            cfg['in_index'] = list(range(len(self.in_channels)))
        if 'in_channels' not in cfg:
            idx = cfg['in_index']
            cfg['in_channels'] = ([self.in_channels[i] for i in idx] if isinstance(idx, (list, tuple))
                                  else self.in_channels[idx])
        with warnings.catch_warnings():
            # The head builds its own loss_decode, which this wrapper never calls; its
            # deprecation/avg_non_ignore warnings would only mislead users.
            warnings.filterwarnings('ignore', message='``build_loss`` would be deprecated')
            warnings.filterwarnings('ignore', message='Default ``avg_non_ignore`` is False')
            self.head = MODELS.build(cfg)
        if not hasattr(self.head, 'cls_seg'):
            raise TypeError(f'MMSegHeadAdapter: {head["type"]} is not an mmseg decode head '
                            f'(no cls_seg); got {type(self.head).__name__}')

    def forward(self, feats: List[Tensor]) -> Tensor:
        check_pyramid(type(self).__name__, feats, self.in_channels)
        out = self.head(list(feats))
        if isinstance(out, (list, tuple)):
            # Heads with auxiliary outputs (e.g. OCR-style) return several maps; the
            # first is the main prediction by mmseg convention.
            out = out[0]
        return out
