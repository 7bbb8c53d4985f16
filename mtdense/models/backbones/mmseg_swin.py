"""Host around mmseg's ``SwinTransformer`` (mmseg/models/backbones/swin.py).

Structure (verified against mmseg 1.2.2): ``stages[i].blocks[j]`` are
``SwinBlock`` s; a stage's blocks run, its stage output is the last block's
output *before* the stage's ``PatchMerging`` (``downsample`` at the end of the
stage), and ``SwinTransformer.forward`` applies ``norm{i}`` and reshapes
(B, H*W, C) -> (B, C, H, W). ``SwinBlock.ffn`` is mmcv's ``FFN`` called as
``ffn(norm2(x), identity=x)`` and returns ``x + drop_path(mlp(u))``.

Input size: any. mmseg pads the image to the patch size (``padding='corner'``),
pads each window partition to the window size and pads odd sizes in
``PatchMerging``; level i has size ceil(H / stride_i). Multiples of
32 * window_size avoid padding altogether.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from mtdense.registry import MODELS
from .base_host import BackboneHost, BlockRef, LevelRef


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

    def __init__(self, **kwargs) -> None:
        super().__init__()
        from mmseg.models.backbones import SwinTransformer
        for key in ('pretrained', 'init_cfg'):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f'MMSegSwin: backbone key {key!r}={kwargs[key]!r} is not supported; '
                    'pass the weights as AdaptedBackbone(checkpoint=...)')
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
                self.blocks.append(
                    BlockRef(
                        index=len(self.blocks),
                        stage=s,
                        name=f'stages.{s}.blocks.{j}',
                        module=blk,
                        mlp=blk.ffn,
                        dim=bb.num_features[s],
                        linears={
                            'qkv': (blk.attn.w_msa.qkv, None),
                            'proj': (blk.attn.w_msa.proj, None),
                            'fc1': (blk.ffn.layers[0][0], None),
                            'fc2': (blk.ffn.layers[1], None)
                        }))
            self.levels.append(
                LevelRef(
                    block_index=len(self.blocks) - 1, channels=bb.num_features[s], stride=stride))

    def init_backbone_weights(self) -> None:
        # mmseg's from-scratch init (trunc-normal linears, unit LayerNorms)
        self.backbone.init_weights()

    def forward_main(self, x: Tensor, backbone: Optional[nn.Module] = None) -> List[Tensor]:
        bb = self.backbone if backbone is None else backbone
        return list(bb(x))

    def output_transform(self,
                         level: int,
                         z: Tensor,
                         hw: Tuple[int, int],
                         backbone: Optional[nn.Module] = None) -> Tensor:
        bb = self.backbone if backbone is None else backbone
        # same ops as SwinTransformer.forward: norm{i}, then (N, H*W, C) -> (N, C, H, W);
        # left as a channels-last view (no copy of the T task maps): task-batched heads
        # read it as tokens directly, and convs take either layout
        out = getattr(bb, f'norm{level}')(z)
        return out.view(-1, hw[0], hw[1], self.levels[level].channels).permute(0, 3, 1, 2)
