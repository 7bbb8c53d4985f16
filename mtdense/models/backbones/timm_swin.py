"""Host around timm's ``SwinTransformer`` (timm/models/swin_transformer.py).

Structure (verified against timm 1.0.31): ``layers[i]`` is a
``SwinTransformerStage`` whose ``downsample`` (PatchMerging, Identity for
stage 0) runs at the *start* of the stage, followed by ``blocks``; block
tensors are NHWC. ``SwinTransformerBlock.forward`` computes
``x + drop_path1(attn(norm1(x)))`` then ``x + drop_path2(mlp(norm2(x)))`` with
the MLP input flattened to (B, H*W, C). ``forward_intermediates`` returns the
stage outputs permuted to NCHW and applies the final ``norm`` only to the last
stage, and only with ``norm=True``.

Stage-wise forward (MTLoRA): ``embed`` = ``patch_embed`` then ``layers[0].downsample``
(an Identity); ``merge(i)`` = ``layers[i + 1].downsample``, the PatchMerging that
opens the next stage; block tensors stay NHWC throughout.

Input size: with ``strict_img_size=False`` (our default) any H, W that are
multiples of the patch size are accepted; window partitions are padded and
the shift masks are built per forward. Window sizes are fixed at construction
from ``img_size`` (timm shrinks a window to the feature size when the feature
map is smaller), so set ``img_size`` to the training resolution.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost, BlockParts, BlockRef, LevelRef
from mtdense.registry import MODELS
from .host_utils import create_timm_backbone


@MODELS.register_module()
class TimmSwin(BackboneHost):
    """timm Swin Transformer host (``timm.create_model(..., pretrained=False)``).

    Args:
        model_name: a timm Swin model name, e.g. ``'swin_tiny_patch4_window7_224'``;
            architecture keywords (``embed_dim``, ``depths``, ``num_heads``,
            ``window_size``, ...) in ``kwargs`` override the named variant.
        img_size: construction image size (sets the per-stage window sizes).
        norm_last: apply timm's final ``norm`` to the last level
            (``forward_intermediates(norm=True)``). When False the unused final norm is
            removed (its checkpoint keys are reported as dropped when loading).
        strict_img_size: timm's flag; False (default) accepts any multiple of the patch size.
        **kwargs: further ``timm.create_model`` keyword arguments.
    """

    family = 'swin'
    has_stage_forward = True

    def __init__(self,
                 model_name: str = 'swin_tiny_patch4_window7_224',
                 img_size: int = 224,
                 norm_last: bool = False,
                 strict_img_size: bool = False,
                 **kwargs) -> None:
        super().__init__()
        self.model_name = model_name
        self.norm_last = norm_last
        self.backbone = bb = create_timm_backbone(
            'TimmSwin', model_name, ('layers', 'forward_intermediates'), 'SwinTransformer',
            img_size=img_size, strict_img_size=strict_img_size, **kwargs)
        if not norm_last:
            # final norm is only ever applied to the last intermediate with norm=True
            bb.norm = nn.Identity()
        self.blocks: List[BlockRef] = []
        self.levels: List[LevelRef] = []
        for s, stage in enumerate(bb.layers):
            for j, blk in enumerate(stage.blocks):
                mlp = blk.mlp
                parts = ('fc1', 'act', 'drop1', 'norm', 'fc2', 'drop2')
                if not all(hasattr(mlp, a) for a in parts):
                    raise TypeError(f'TimmSwin: layers.{s}.blocks.{j}.mlp is a '
                                    f'{type(mlp).__name__}, not the timm Mlp {parts}')
                self.blocks.append(
                    BlockRef(
                        index=len(self.blocks),
                        stage=s,
                        name=f'layers.{s}.blocks.{j}',
                        module=blk,
                        mlp=blk.mlp,
                        dim=blk.dim,
                        linears={
                            'qkv': (blk.attn.qkv, None),
                            'proj': (blk.attn.proj, None),
                            'fc1': (blk.mlp.fc1, None),
                            'fc2': (blk.mlp.fc2, None)
                        },
                        parts=BlockParts(
                            norm2=blk.norm2,
                            proj_drop=blk.attn.proj_drop,
                            attn_drop_path=blk.drop_path1,
                            mlp_hidden=(mlp.act, mlp.drop1, mlp.norm),
                            mlp_out=(mlp.drop2, ),
                            mlp_drop_path=blk.drop_path2)))
            self.levels.append(
                LevelRef(
                    block_index=len(self.blocks) - 1,
                    channels=bb.feature_info[s]['num_chs'],
                    stride=bb.feature_info[s]['reduction']))

    def _forward_main(self, x: Tensor, bb: nn.Module) -> List[Tensor]:
        return list(
            bb.forward_intermediates(
                x,
                indices=list(range(len(self.levels))),
                norm=self.norm_last,
                intermediates_only=True))

    def _output_transform(self, level: int, z: Tensor, hw: Tuple[int, int],
                          bb: nn.Module) -> Tensor:
        if self.norm_last and level == len(self.levels) - 1:
            z = bb.norm(z)
        # block outputs are NHWC already; a channels-last view, as in MMSegSwin
        return z.permute(0, 3, 1, 2)

    # ------------------------------------------------------ stage-wise forward
    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.backbone.layers[0].downsample(self.backbone.patch_embed(x))
        return x, (int(x.shape[1]), int(x.shape[2]))

    def run_block(self, block: BlockRef, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return block.module(x)

    def merge(self, stage: int, x: Tensor,
              hw: Tuple[int, int]) -> Optional[Tuple[Tensor, Tuple[int, int]]]:
        layers = self.backbone.layers
        if stage + 1 >= len(layers):
            return None
        x = layers[stage + 1].downsample(x)
        return x, (int(x.shape[1]), int(x.shape[2]))

    def tokens_to_nchw(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return x.permute(0, 3, 1, 2)

    def attn_windows_to_tokens(self, block: BlockRef, windows: Tensor,
                               hw: Tuple[int, int]) -> Tensor:
        # the tail of SwinTransformerBlock._attn after the attention: merge windows, crop
        # the padding to the window size, reverse the cyclic shift
        from timm.models.swin_transformer import window_reverse
        blk = block.module
        ws, (h, w), c = tuple(blk.window_size), hw, windows.shape[-1]
        h_pad, w_pad = -(-h // ws[0]) * ws[0], -(-w // ws[1]) * ws[1]
        x = window_reverse(windows.view(-1, ws[0], ws[1], c), ws, h_pad, w_pad)
        x = x[:, :h, :w, :].contiguous()
        if any(blk.shift_size):
            x = torch.roll(x, shifts=tuple(blk.shift_size), dims=(1, 2))
        return x

    def merged_levels(self) -> List[LevelRef]:
        layers, out = self.backbone.layers, []
        for s, lv in enumerate(self.levels):
            if s + 1 < len(layers):
                out.append(
                    LevelRef(lv.block_index, layers[s + 1].downsample.out_dim,
                             self.levels[s + 1].stride))
            else:
                out.append(LevelRef(lv.block_index, lv.channels, lv.stride))
        return out

    def merge_param_names(self) -> List[str]:
        return [
            f'layers.{s}.downsample.reduction.{n}'
            for s in range(1, len(self.backbone.layers))
            for n, _ in self.backbone.layers[s].downsample.reduction.named_parameters()
        ]

    def output_norm_param_names(self) -> List[str]:
        return [n for n, _ in self.backbone.named_parameters() if n.startswith('norm.')]
