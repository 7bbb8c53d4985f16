"""Small pieces the host wrappers share (creating timm models, the ViT pyramid neck)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch.nn as nn

_DOWNLOAD_KEYS = ('pretrained', 'pretrained_cfg', 'pretrained_cfg_overlay', 'checkpoint_path')
_MANAGED_KEYS = ('num_classes', 'features_only')


def reject_weight_kwargs(owner: str, kwargs: Mapping) -> None:
    """mmseg backbones load weights themselves through ``pretrained`` / ``init_cfg``;
    wrapped here, the one checkpoint path is ``AdaptedBackbone(checkpoint=...)``."""
    for key in ('pretrained', 'init_cfg'):
        if kwargs.get(key) is not None:
            raise ValueError(f'{owner}: backbone key {key!r}={kwargs[key]!r} is not supported; '
                             'pass the weights as AdaptedBackbone(checkpoint=...)')


def check_timm_kwargs(owner: str, kwargs: Mapping) -> None:
    """Refuse ``timm.create_model`` keywords a host manages or that would download weights."""
    for key in _DOWNLOAD_KEYS:
        if kwargs.get(key):
            raise ValueError(
                f'{owner}: backbone key {key!r} is not supported (never downloads); '
                'pass the weights as AdaptedBackbone(checkpoint=...)')
    for key in _MANAGED_KEYS:
        if key in kwargs:
            raise ValueError(
                f'{owner}: backbone key {key!r} is managed by the host (the '
                'classifier is removed and features come from forward_intermediates)')


def vit_pyramid_neck(host) -> dict:
    """``MultiLevelNeck`` config turning a ViT host's single-scale levels into strides 4..32."""
    dim = host.levels[0].channels
    return dict(
        type='MultiLevelNeck',
        in_channels=[dim] * len(host.levels),
        out_channels=dim,
        scales=[host.patch_size / s for s in (4, 8, 16, 32)])


def create_timm_backbone(owner: str, model_name: str, required: Sequence[str], expected: str,
                         **kwargs) -> nn.Module:
    """``timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)``, checked.

    Refuses managed / downloading keywords (:func:`check_timm_kwargs`) and a model without
    the ``required`` attributes (``expected`` names the timm class in the error).
    """
    import timm
    check_timm_kwargs(owner, kwargs)
    bb = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
    if not all(hasattr(bb, a) for a in required):
        raise TypeError(f'{owner}: {model_name!r} is not a timm {expected} '
                        f'(got {type(bb).__name__})')
    return bb
