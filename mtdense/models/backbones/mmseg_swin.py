"""Host around mmseg's ``SwinTransformer`` (mmseg/models/backbones/swin.py).

Structure (verified against mmseg 1.2.2): ``stages[i].blocks[j]`` are
``SwinBlock`` s; a stage's blocks run, its stage output is the last block's
output *before* the stage's ``PatchMerging`` (``downsample`` at the end of the
stage), and ``SwinTransformer.forward`` applies ``norm{i}`` and reshapes
(B, H*W, C) -> (B, C, H, W). ``SwinBlock.ffn`` is mmcv's ``FFN`` called as
``ffn(norm2(x), identity=x)`` and returns ``x + drop_path(mlp(u))``.

Stage-wise forward (MTLoRA): ``embed`` = ``patch_embed`` (+ absolute position
embedding) and ``drop_after_pos``; ``merge(i)`` = ``stages[i].downsample`` (mmseg's
``PatchMerging``: ``nn.Unfold``, norm, reduction), as in ``SwinTransformer.forward``.

Input size: any. mmseg pads the image to the patch size (``padding='corner'``),
pads each window partition to the window size and pads odd sizes in
``PatchMerging``; level i has size ceil(H / stride_i). Multiples of
32 * window_size avoid padding altogether.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost, BlockParts, BlockRef, LevelRef
from mtdense.registry import MODELS
from .host_utils import reject_weight_kwargs


def _ffn_parts(blk: nn.Module, name: str) -> Tuple[Tuple[nn.Module, ...], Tuple[nn.Module, ...]]:
    """(modules after fc1, modules after fc2) of mmcv's two-layer ``FFN``
    ``Sequential(Sequential(fc1, act, drop), fc2, drop)`` followed by ``gamma2``."""
    ffn = blk.ffn
    layers = ffn.layers
    if (len(layers) != 3 or len(layers[0]) != 3 or not isinstance(layers[1], nn.Linear)
            or not getattr(ffn, 'add_identity', False)):
        raise TypeError(f'MMSegSwin: {name}.ffn is not the two-layer residual mmcv FFN this host '
                        'describes (num_fcs=2, add_identity=True)')
    return (layers[0][1], layers[0][2]), (layers[2], ffn.gamma2)


@MODELS.register_module()
class MMSegSwin(BackboneHost):
    """mmseg Swin Transformer host.

    Args:
        **kwargs: keyword arguments of ``mmseg.models.backbones.SwinTransformer``
            (``embed_dims``, ``depths``, ``num_heads``, ``window_size``, ...).
            ``out_indices`` must cover all 4 stages (the default); weights come
            from ``AdaptedBackbone(checkpoint=...)``, not ``pretrained``/``init_cfg``.
    """

    family = 'swin'
    has_stage_forward = True

    def __init__(self, **kwargs) -> None:
        super().__init__()
        from mmseg.models.backbones import SwinTransformer
        reject_weight_kwargs('MMSegSwin', kwargs)
        if kwargs.get('with_cp', False):
            raise ValueError('MMSegSwin: with_cp=True is not supported (the PETL methods attach '
                             'through forward hooks, which gradient checkpointing would re-run)')
        if kwargs.get('frozen_stages', -1) != -1:
            raise ValueError('MMSegSwin: frozen_stages is not supported; the PETL method decides '
                             "what is trained (e.g. peft=dict(type='DecoderOnly'))")
        self.backbone = SwinTransformer(**kwargs)
        bb = self.backbone
        num_stages = len(bb.stages)
        if tuple(bb.out_indices) != tuple(range(num_stages)):
            raise ValueError(f'MMSegSwin: out_indices must be {tuple(range(num_stages))} (every '
                             f'stage is a pyramid level), got {tuple(bb.out_indices)}')
        strides = tuple(kwargs.get('strides', (4, 2, 2, 2)))
        self.blocks: List[BlockRef] = []
        self.levels: List[LevelRef] = []
        stride = 1
        for s, stage in enumerate(bb.stages):
            stride *= strides[s]
            for j, blk in enumerate(stage.blocks):
                name = f'stages.{s}.blocks.{j}'
                hidden, after_fc2 = _ffn_parts(blk, name)
                self.blocks.append(
                    BlockRef(
                        index=len(self.blocks),
                        stage=s,
                        name=name,
                        module=blk,
                        mlp=blk.ffn,
                        dim=bb.num_features[s],
                        linears={
                            'qkv': (blk.attn.w_msa.qkv, None),
                            'proj': (blk.attn.w_msa.proj, None),
                            'fc1': (blk.ffn.layers[0][0], None),
                            'fc2': (blk.ffn.layers[1], None)
                        },
                        parts=BlockParts(
                            norm2=blk.norm2,
                            proj_drop=blk.attn.w_msa.proj_drop,
                            attn_drop_path=blk.attn.drop,
                            mlp_hidden=hidden,
                            mlp_out=after_fc2,
                            mlp_drop_path=blk.ffn.dropout_layer)))
            self.levels.append(
                LevelRef(
                    block_index=len(self.blocks) - 1, channels=bb.num_features[s], stride=stride))

    def init_backbone_weights(self) -> None:
        # mmseg's from-scratch init (trunc-normal linears, unit LayerNorms). Its own notice
        # ("No pre-trained weights ... training start from scratch", a bare print) is replaced:
        # it also appeared before a trained checkpoint was loaded into the model, where it
        # misled; ours says what happened and goes to the log.
        import contextlib
        import io

        from mmengine.logging import print_log
        with contextlib.redirect_stdout(io.StringIO()):
            self.backbone.init_weights()
        print_log('MMSegSwin: no backbone checkpoint given: weights randomly initialised (a '
                  'checkpoint loaded into the model afterwards replaces them)', logger='current')

    def _forward_main(self, x: Tensor, bb: nn.Module) -> List[Tensor]:
        return list(bb(x))

    def _output_transform(self, level: int, z: Tensor, hw: Tuple[int, int],
                          bb: nn.Module) -> Tensor:
        # same ops as SwinTransformer.forward: norm{i}, then (N, H*W, C) -> (N, C, H, W);
        # left as a channels-last view (no copy of the T task maps): task-batched heads
        # read it as tokens directly, and convs take either layout
        out = getattr(bb, f'norm{level}')(z)
        return out.view(-1, hw[0], hw[1], self.levels[level].channels).permute(0, 3, 1, 2)

    # ------------------------------------------------------ stage-wise forward
    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        bb = self.backbone
        x, hw = bb.patch_embed(x)
        if bb.use_abs_pos_embed:
            x = x + bb.absolute_pos_embed
        return bb.drop_after_pos(x), tuple(hw)

    def run_block(self, block: BlockRef, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return block.module(x, hw)

    def merge(self, stage: int, x: Tensor,
              hw: Tuple[int, int]) -> Optional[Tuple[Tensor, Tuple[int, int]]]:
        down = self.backbone.stages[stage].downsample
        if down is None:
            return None
        x, hw = down(x, hw)
        return x, tuple(hw)

    def tokens_to_nchw(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return x.view(-1, hw[0], hw[1], x.shape[-1]).permute(0, 3, 1, 2)

    def attn_windows_to_tokens(self, block: BlockRef, windows: Tensor,
                               hw: Tuple[int, int]) -> Tensor:
        # the tail of ShiftWindowMSA.forward after w_msa: merge windows, reverse the
        # cyclic shift, crop the padding to the window size
        attn = block.module.attn
        ws, (h, w), c = attn.window_size, hw, windows.shape[-1]
        h_pad, w_pad = -(-h // ws) * ws, -(-w // ws) * ws
        x = attn.window_reverse(windows.view(-1, ws, ws, c), h_pad, w_pad)
        if attn.shift_size > 0:
            x = torch.roll(x, shifts=(attn.shift_size, attn.shift_size), dims=(1, 2))
        if h_pad != h or w_pad != w:
            x = x[:, :h, :w, :].contiguous()
        return x.view(x.shape[0], h * w, c)

    def merged_levels(self) -> List[LevelRef]:
        out = []
        for s, stage in enumerate(self.backbone.stages):
            lv = self.levels[s]
            if stage.downsample is None:
                out.append(LevelRef(lv.block_index, lv.channels, lv.stride))
            else:
                nxt = self.levels[s + 1]
                out.append(
                    LevelRef(lv.block_index, stage.downsample.reduction.out_features, nxt.stride))
        return out

    def merge_param_names(self) -> List[str]:
        return [
            f'stages.{s}.downsample.reduction.{n}'
            for s, stage in enumerate(self.backbone.stages) if stage.downsample is not None
            for n, _ in stage.downsample.reduction.named_parameters()
        ]

    def output_norm_param_names(self) -> List[str]:
        prefixes = tuple(f'norm{i}.' for i in range(len(self.levels)))
        return [n for n, _ in self.backbone.named_parameters() if n.startswith(prefixes)]
