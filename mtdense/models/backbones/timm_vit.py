"""Host around timm's ``VisionTransformer`` (timm/models/vision_transformer.py).

Structure (verified against timm 1.0.31): ``blocks[i]`` are pre-norm ``Block`` s:
``x + drop_path1(ls1(attn(norm1(x))))`` then ``x + drop_path2(ls2(mlp(norm2(x))))``;
``forward_intermediates`` applies the final ``norm`` to every intermediate only
with ``norm=True``, drops the ``num_prefix_tokens`` (class/register tokens) and
reshapes to NCHW. Only ``Block`` (pre-norm, MLP input = LN2(x)) is accepted.

Single scale: default neck = mmseg ``MultiLevelNeck`` to strides 4/8/16/32.
Input size: ``dynamic_img_size=True`` (our default) accepts any multiple of the
patch size and resamples the position embedding per forward.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost, BlockRef, LevelRef
from mtdense.registry import MODELS
from .host_utils import create_timm_backbone, vit_pyramid_neck


@MODELS.register_module()
class TimmViT(BackboneHost):
    """timm ViT host (``timm.create_model(..., pretrained=False, num_classes=0)``).

    Args:
        model_name: timm ViT name, e.g. ``'vit_base_patch16_224'``; architecture keywords
            (``embed_dim``, ``depth``, ``num_heads``, ``patch_size``, ...) override it.
        img_size: construction image size (position-embedding grid).
        out_indices: blocks whose outputs are used (default: 4 evenly spaced, ending last).
        norm: apply the final norm to the outputs (``forward_intermediates(norm=True)``).
        dynamic_img_size: timm's flag (default True: any multiple of the patch size).
        **kwargs: further ``timm.create_model`` keyword arguments.
    """

    family = 'vit'

    def __init__(self,
                 model_name: str = 'vit_base_patch16_224',
                 img_size: int = 224,
                 out_indices: Optional[Sequence[int]] = None,
                 norm: bool = False,
                 dynamic_img_size: bool = True,
                 **kwargs) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block
        self.model_name = model_name
        self.norm = norm
        self.backbone = bb = create_timm_backbone(
            'TimmViT', model_name, ('blocks', 'forward_intermediates'), 'VisionTransformer',
            img_size=img_size, dynamic_img_size=dynamic_img_size, **kwargs)
        depth = len(bb.blocks)
        if out_indices is None:
            out_indices = [depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1]
        out_indices = [int(i) % depth for i in out_indices]
        if sorted(set(out_indices)) != out_indices:
            raise ValueError(f'TimmViT: out_indices {out_indices} must be increasing and unique')
        self.out_indices = out_indices
        if not norm:
            bb.norm = nn.Identity()  # only used on intermediates with norm=True
        self.patch_size = bb.patch_embed.patch_size[0]
        self.pos_grid = tuple(bb.patch_embed.grid_size)
        self.num_prefix_tokens = 0 if getattr(bb, 'no_embed_class', False) else bb.num_prefix_tokens
        self.blocks: List[BlockRef] = []
        for i, blk in enumerate(bb.blocks):
            if type(blk) is not Block:
                raise TypeError(f'TimmViT: blocks.{i} is {type(blk).__name__}; only the pre-norm '
                                'timm Block (MLP input = norm2(x)) is supported')
            for attr in ('qkv', 'proj'):
                if not isinstance(getattr(blk.attn, attr, None), nn.Linear):
                    raise TypeError(f'TimmViT: blocks.{i}.attn.{attr} is not an nn.Linear')
            self.blocks.append(
                BlockRef(
                    index=i,
                    stage=0,
                    name=f'blocks.{i}',
                    module=blk,
                    mlp=blk.mlp,
                    dim=bb.embed_dim,
                    linears={
                        'qkv': (blk.attn.qkv, None),
                        'proj': (blk.attn.proj, None),
                        'fc1': (blk.mlp.fc1, None),
                        'fc2': (blk.mlp.fc2, None)
                    }))
        self.levels = [
            LevelRef(block_index=i, channels=bb.embed_dim, stride=self.patch_size)
            for i in out_indices
        ]

    def default_neck(self) -> Optional[dict]:
        return vit_pyramid_neck(self)

    def _forward_main(self, x: Tensor, bb: nn.Module) -> List[Tensor]:
        return list(
            bb.forward_intermediates(
                x, indices=self.out_indices, norm=self.norm, intermediates_only=True))

    def _output_transform(self, level: int, z: Tensor, hw: Tuple[int, int],
                          bb: nn.Module) -> Tensor:
        if self.norm:
            z = bb.norm(z)
        z = z[:, bb.num_prefix_tokens:]
        return z.reshape(z.shape[0], hw[0], hw[1], z.shape[-1]).permute(0, 3, 1, 2).contiguous()
