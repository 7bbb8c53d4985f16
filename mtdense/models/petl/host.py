"""A uniform view of a wrapped (never forked) transformer backbone.

A *host* owns one mmseg or timm backbone and exposes what parameter-efficient
methods need, independently of the library:

* ``blocks``: every transformer block in forward order, with its stage, width,
  its MLP slot (the module whose first positional input is ``u = LN2(x)`` and
  whose contribution is added to the residual stream by the block) and the
  linear layers LoRA-style methods can target (``qkv``, ``proj``, ``fc1``,
  ``fc2``);
* ``levels``: the backbone outputs; for each, the block whose output feeds it
  and the *output transform* the backbone applies to that block output
  (e.g. mmseg Swin: ``norm{i}`` then token-to-NCHW; timm ViT: drop prefix
  tokens then reshape);
* ``forward_main``: the wrapped backbone's own forward (mmseg ``forward`` /
  timm ``forward_intermediates``), so checkpoints and behaviour match exactly;
* for hierarchical (Swin) hosts, a *stage-wise* view of that same forward
  (``embed`` / ``run_block`` / ``merge``, see :class:`StageForward`) and, per
  block, the modules between its linears (:class:`BlockParts`), for methods that
  route their own task streams through the stages (MTLoRA).

Methods attach through forward hooks on blocks / MLP slots / linears; the
backbone's module tree and state-dict keys are left unchanged (except where a
parametrisation is unavoidable, see :class:`~mtdense.models.backbones.MMSegViT`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, _BatchNorm)


@dataclass
class BlockRef:
    """One transformer block of the wrapped backbone.

    Attributes:
        index: global position of the block in forward order.
        stage: stage index (0 for a single-stage ViT).
        name: qualified module name inside the wrapped backbone.
        module: the block; its forward output is the residual stream after the block.
        mlp: the MLP slot; ``mlp`` is called with ``u = LN2(x)`` as first positional
            argument and the block adds (drop-path/layer-scale of) its result to ``x``.
        dim: token width d of the block.
        linears: LoRA targets ``{'qkv', 'proj', 'fc1', 'fc2'}`` -> ``(module, param_name)``;
            ``param_name`` is ``None`` for an ``nn.Linear`` called as a module (hookable)
            and the weight's attribute name when the weight is consumed functionally
            (``nn.MultiheadAttention``), which needs a parametrisation.
        parts: the block's inner pieces (:class:`BlockParts`; Swin hosts only).
    """
    index: int
    stage: int
    name: str
    module: nn.Module
    mlp: nn.Module
    dim: int
    linears: Dict[str, Tuple[nn.Module, Optional[str]]] = field(default_factory=dict)
    parts: Optional[BlockParts] = None


@dataclass
class BlockParts:
    """The pieces of a Swin block between its LoRA targets, for a method that runs
    the block's second half on its own task streams (MTLoRA).

    The block computes, in its own tensor layout (tokens ``(B, L, C)`` for mmseg,
    NHWC for timm), with ``a`` the attention output entering ``proj`` (window
    layout ``(nW * B, N, C)``)::

        y   = x + attn_drop_path(attn_tokens(proj_drop(proj(a))))
        out = y + mlp_drop_path(mlp_out(fc2(mlp_hidden(fc1(norm2(y))))))

    where ``attn_tokens`` (the host's :meth:`BackboneHost.attn_windows_to_tokens`)
    merges the windows, reverses the cyclic shift and crops the window padding.

    Attributes:
        norm2: the MLP's input norm.
        proj_drop: dropout applied to ``proj``'s output inside the attention.
        attn_drop_path: drop path of the attention branch.
        mlp_hidden: modules applied in order to ``fc1``'s output (activation, dropout).
        mlp_out: modules applied in order to ``fc2``'s output (dropout, layer scale).
        mlp_drop_path: drop path of the MLP branch.
    """
    norm2: nn.Module
    proj_drop: nn.Module
    attn_drop_path: nn.Module
    mlp_hidden: Tuple[nn.Module, ...]
    mlp_out: Tuple[nn.Module, ...]
    mlp_drop_path: nn.Module


@dataclass
class LevelRef:
    """One output of the wrapped backbone (before any neck)."""
    block_index: int
    channels: int
    stride: int


class BackboneHost(nn.Module):
    """Base class of the library-specific hosts (see module docstring).

    Subclasses set ``self.backbone``, ``self.blocks``, ``self.levels`` and
    implement :meth:`forward_main`, :meth:`output_transform`.
    """

    #: 'swin' (hierarchical, 4 levels) or 'vit' (single scale; needs a neck).
    family: str = ''
    #: True when LoRA on attention needs a parametrisation (no batching over tasks).
    attention_needs_parametrization: bool = False

    backbone: nn.Module
    blocks: List[BlockRef]
    levels: List[LevelRef]

    # ------------------------------------------------------------------ forward
    def forward_main(self, x: Tensor, backbone: Optional[nn.Module] = None) -> List[Tensor]:
        """Run the wrapped backbone's own forward; one NCHW tensor per level.

        Args:
            x: images (B, 3, H, W).
            backbone: run this module instead of ``self.backbone`` (a copy with the
                same architecture; used by per-task full fine-tuning).
        """
        return self._forward_main(x, self._backbone(backbone))

    def output_transform(self,
                         level: int,
                         z: Tensor,
                         hw: Tuple[int, int],
                         backbone: Optional[nn.Module] = None) -> Tensor:
        """Apply the backbone's output transform of ``level`` to block outputs ``z``.

        Args:
            level: level index.
            z: outputs of the level's block, shaped like that block's output with
                any batch size (tasks are stacked along the batch, task-major).
            hw: spatial size of the level (read from the main-stream output).
        Returns:
            (N, C, H, W) tensor.
        """
        return self._output_transform(level, z, hw, self._backbone(backbone))

    def _backbone(self, backbone: Optional[nn.Module]) -> nn.Module:
        return self.backbone if backbone is None else backbone

    def _forward_main(self, x: Tensor, bb: nn.Module) -> List[Tensor]:
        """Subclass hook of :meth:`forward_main` (``bb``: the backbone module to run)."""
        raise NotImplementedError

    def _output_transform(self, level: int, z: Tensor, hw: Tuple[int, int],
                          bb: nn.Module) -> Tensor:
        """Subclass hook of :meth:`output_transform` (``bb``: the backbone module)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> List[Tensor]:
        return self.forward_main(x)

    # ------------------------------------------------------ stage-wise forward
    # The same computation as ``forward_main`` cut at block and stage boundaries, for
    # methods that carry their own task streams through the stages (MTLoRA). Only
    # hierarchical hosts implement it; ``run_block`` calls the block module, so hooks
    # fire as in ``forward_main``.

    #: True when the host implements the stage-wise forward (Swin hosts).
    has_stage_forward: bool = False

    def _no_stage_forward(self, what: str):
        raise NotImplementedError(
            f'{type(self).__name__}.{what}: this host has no stage-wise forward (it is not a '
            'hierarchical backbone with patch merging between stages)')

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embedding (+ absolute position embedding and its dropout) of images ``x``:
        tokens in the block layout and their grid size (H, W)."""
        self._no_stage_forward('embed')

    def run_block(self, block: BlockRef, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """``block`` on tokens ``x`` (block layout, any batch) of grid size ``hw``."""
        self._no_stage_forward('run_block')

    def merge(self, stage: int, x: Tensor,
              hw: Tuple[int, int]) -> Optional[Tuple[Tensor, Tuple[int, int]]]:
        """The patch merging that follows ``stage``, on that stage's block-layout tokens
        (any batch): merged tokens and their grid size; None after the last stage."""
        self._no_stage_forward('merge')

    def tokens_to_nchw(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """Block-layout tokens -> (N, C, H, W) (a channels-last view where possible)."""
        self._no_stage_forward('tokens_to_nchw')

    def attn_windows_to_tokens(self, block: BlockRef, windows: Tensor,
                               hw: Tuple[int, int]) -> Tensor:
        """Window-layout attention outputs ``(nW * N, Wh * Ww, C)`` of ``block`` -> the block
        layout: merge windows, reverse the cyclic shift, crop the window padding (what the
        block does to ``proj``'s output before its drop path)."""
        self._no_stage_forward('attn_windows_to_tokens')

    def merged_levels(self) -> List[LevelRef]:
        """One level per stage taken *after* the stage's patch merging (the last stage has
        none): the stage's last block, the merged channels and stride (Swin-T:
        192/384/768/768 at strides 8/16/32/32)."""
        self._no_stage_forward('merged_levels')

    def merge_param_names(self) -> List[str]:
        """Names of the patch-merging reduction weights (not their norms)."""
        return []

    def output_norm_param_names(self) -> List[str]:
        """Norm parameters used only by the level output transforms (mmseg Swin's
        ``norm{i}``, timm's final norm): unused by a method that reads the post-merge
        stage outputs."""
        return []

    # --------------------------------------------------------------- metadata
    @property
    def num_stages(self) -> int:
        return max(b.stage for b in self.blocks) + 1

    @property
    def out_channels(self) -> List[int]:
        return [lv.channels for lv in self.levels]

    def default_tap_blocks(self) -> List[int]:
        """Blocks whose outputs are backbone outputs (one per level)."""
        return [lv.block_index for lv in self.levels]

    def default_neck(self) -> Optional[dict]:
        """Neck config turning the outputs into a 4-level pyramid (None: not needed)."""
        return None

    def stage_dims(self) -> List[int]:
        dims: Dict[int, int] = {}
        for b in self.blocks:
            dims.setdefault(b.stage, b.dim)
        return [dims[s] for s in range(self.num_stages)]

    def init_backbone_weights(self) -> None:
        """Random initialisation used when no checkpoint is given."""

    def check_forward_compatible(self) -> None:
        """Raise if the configuration cannot host forward-hook based methods."""

    # ------------------------------------------------------ parameter classes
    def norm_param_names(self) -> List[str]:
        """Names (in ``self.backbone``) of all normalisation-layer parameters."""
        names = []
        for mname, m in self.backbone.named_modules():
            if isinstance(m, NORM_TYPES):
                for pname, _ in m.named_parameters(recurse=False):
                    names.append(f'{mname}.{pname}' if mname else pname)
        return names

    def rel_pos_param_names(self) -> List[str]:
        return [
            n for n, _ in self.backbone.named_parameters() if 'relative_position_bias_table' in n
        ]

    def patch_embed_param_names(self) -> List[str]:
        """Patch embedding plus absolute position embedding / class-register tokens."""
        extra = ('absolute_pos_embed', 'pos_embed', 'cls_token', 'reg_token')
        return [
            n for n, _ in self.backbone.named_parameters()
            if n.startswith('patch_embed.') or n in extra
        ]

    # ------------------------------------------------------------- utilities
    @staticmethod
    def _check_levels(levels: Sequence[LevelRef], what: str) -> None:
        if not levels:
            raise ValueError(f'{what}: the backbone config yields no outputs')
