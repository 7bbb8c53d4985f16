"""Host around mmseg's ``VisionTransformer`` (mmseg/models/backbones/vit.py).

Structure (verified against mmseg 1.2.2): ``layers[i]`` are
``TransformerEncoderLayer`` s computing ``x = attn(ln1(x), identity=x)`` then
``x = ffn(ln2(x), identity=x)``; ``attn.attn`` is a ``torch.nn.MultiheadAttention``
(weights ``in_proj_weight`` and ``out_proj.weight`` are consumed functionally,
so LoRA on them is a parametrisation and per-task LoRA loops over tasks);
after the last layer the optional final norm ``ln1`` is applied *before* the
output is taken; outputs drop the class token and reshape to NCHW.

Single scale: the default neck is mmseg's ``MultiLevelNeck`` with scales
patch/4, patch/8, patch/16, patch/32 (ViT-B/16: 4, 2, 1, 0.5) giving strides
4/8/16/32. Input size: any; the patch embedding pads to the patch size and
the position embedding is resized by mmseg to the token grid.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost, BlockRef, LevelRef
from mtdense.registry import MODELS
from .host_utils import reject_weight_kwargs, vit_pyramid_neck


@MODELS.register_module()
class MMSegViT(BackboneHost):
    """mmseg Vision Transformer host.

    Args:
        **kwargs: keyword arguments of ``mmseg.models.backbones.VisionTransformer``;
            ``out_indices`` (default here: 4 evenly spaced blocks, ending with the last)
            must be a list; ``output_cls_token``/``out_origin``/``with_cp`` are not supported.
    """

    family = 'vit'
    attention_needs_parametrization = True
    num_prefix_tokens = 1  # mmseg's pos_embed always has the class-token slot

    def __init__(self, **kwargs) -> None:
        super().__init__()
        from mmseg.models.backbones import VisionTransformer
        reject_weight_kwargs('MMSegViT', kwargs)
        for key in ('output_cls_token', 'out_origin', 'with_cp'):
            if kwargs.get(key, False):
                raise ValueError(f'MMSegViT: {key}=True is not supported by AdaptedBackbone')
        if list(kwargs.get('frozen_exclude', ['all'])) != ['all']:
            raise ValueError('MMSegViT: frozen_exclude is not supported; the PETL method decides '
                             'what is trained')
        num_layers = kwargs.get('num_layers', 12)
        out_indices = kwargs.setdefault(
            'out_indices',
            [num_layers // 4 - 1, num_layers // 2 - 1, 3 * num_layers // 4 - 1, num_layers - 1])
        if not isinstance(out_indices, (list, tuple)):
            raise TypeError(
                f'MMSegViT: out_indices must be a list of block indices, got {out_indices!r}')
        out_indices = [i % num_layers for i in out_indices]
        if sorted(set(out_indices)) != list(out_indices):
            raise ValueError(f'MMSegViT: out_indices {out_indices} must be increasing and unique')
        kwargs['out_indices'] = out_indices
        self.backbone = VisionTransformer(**kwargs)
        bb = self.backbone
        dim = bb.cls_token.shape[-1]
        self.patch_size = bb.patch_size
        self.pos_grid = (bb.img_size[0] // bb.patch_size, bb.img_size[1] // bb.patch_size)
        self.blocks: List[BlockRef] = []
        for i, layer in enumerate(bb.layers):
            mha = layer.attn.attn
            if not isinstance(mha, nn.MultiheadAttention):
                raise TypeError(f'MMSegViT: layers.{i}.attn.attn is {type(mha).__name__}, expected '
                                'torch.nn.MultiheadAttention')
            self.blocks.append(
                BlockRef(
                    index=i,
                    stage=0,
                    name=f'layers.{i}',
                    module=layer,
                    mlp=layer.ffn,
                    dim=dim,
                    linears={
                        'qkv': (mha, 'in_proj_weight'),
                        'proj': (mha.out_proj, 'weight'),
                        'fc1': (layer.ffn.layers[0][0], None),
                        'fc2': (layer.ffn.layers[1], None)
                    }))
        self.levels = [
            LevelRef(block_index=i, channels=dim, stride=bb.patch_size) for i in out_indices
        ]

    def init_backbone_weights(self) -> None:
        self.backbone.init_weights()

    def default_neck(self) -> Optional[dict]:
        return vit_pyramid_neck(self)

    def _forward_main(self, x: Tensor, bb: nn.Module) -> List[Tensor]:
        return list(bb(x))

    def _output_transform(self, level: int, z: Tensor, hw: Tuple[int, int],
                          bb: nn.Module) -> Tensor:
        # same ops as VisionTransformer.forward: final norm after the last layer,
        # drop the class token, (N, L, C) -> (N, C, H, W)
        if self.levels[level].block_index == len(bb.layers) - 1 and bb.final_norm:
            z = bb.norm1(z)
        if bb.with_cls_token:
            z = z[:, 1:]
        return z.reshape(z.shape[0], hw[0], hw[1], z.shape[-1]).permute(0, 3, 1, 2).contiguous()
