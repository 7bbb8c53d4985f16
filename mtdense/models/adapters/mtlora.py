"""MTLoRA (Agiza, Neseem, Reda, CVPR 2024) as the official code computes it
(github.com/scale-lab/MTLoRA: ``models/lora.py``, ``models/swin_transformer_mtlora.py``).

A target linear computes ``x W^T + b``; a low-rank term is ``s (x A) B`` (A: in x r,
B: r x out, B = 0 at init).

**Shared stream** (task-agnostic TA-LoRA): qkv, proj, fc1 and fc2 of *every* block::

    y = x W^T + b + s_sh (drop(x) A) B          # drop: LoRA dropout on the LoRA input

It is the backbone's own forward with these deltas; it feeds every next block and,
through each stage's patch merging, the next stage.

**Task streams** (task-specific TS-LoRA, rank ``task_rank``) at the *last block of
every stage*. qkv and the attention map are computed once, by the shared stream;
with ``a`` the attention output entering proj (window layout), ``x`` the block input
and ``h`` the shared MLP hidden, task t computes::

    P_t  = base(proj) + s_t (drop(a) A_t) B_t            # proj: the shared input a
    y_t  = x + DP(R(proj_drop(P_t)))                     # R: windows -> tokens
    F1_t = base(fc1) + s_t (LN2(y_t) A_t) B_t            # fc1: the task's own input
    F2_t = base(fc2) + s_t (act(F1_t) A_t) B_t           # fc2: the task's own hidden
    z_t  = y_t + DP(F2_t)

where ``base(L)`` is L's product on the *shared* input: the pretrained ``x W^T + b``
in mode ``'matrix'`` (default) and the shared output, shared LoRA included, in
``'matrixv2'``. The task inputs of fc1/fc2 get no LoRA dropout (as in the official
code, which only drops its shared input). ``DP`` is the block's drop path, drawn per
task and sample. The shared stream leaves the block unchanged.

**Outputs**: each z_t goes through that stage's patch merging (its own norm +
reduction; the shared stream is merged in the same call, it feeds the next stage);
level s of task t is ``merge_s(z_t)``, the last stage's z_t as is (no output norm, as
the official model). Swin-T: 192/384/768/768 channels at strides 8/16/32/32.

Mode ``'lora_only'`` (official ``SHARED_MODE='lora_only'``): no task terms; every
task reads the shared stream's post-merge stage outputs.

Computation: one backbone pass of the shared stream; at the tapped blocks the task
terms are batched over tasks (one product against the tasks' stacked A for proj,
batched products for fc1/fc2 with the base add fused in), the task LN2 / drop paths
run once on the task-stacked batch, and the T task maps are merged in the same
PatchMerging call as the shared one. Nothing computed is discarded: at the last
block of the last stage the shared stream's output is unused, so in ``'matrix'``
mode its fc2 shared term is not computed there (the task streams do not read it;
its parameters stay, inert, see :meth:`MTLoRA.inert_param_names`).

Trainable by default (the official ``mark_only_lora_as_trainable`` defaults): the
LoRA terms, the patch embedding, every norm the forward uses (not mmseg's output
``norm{i}``), the relative position bias tables and the patch-merging reductions.
Defaults follow the official r64 configuration (``mtlora_tiny_448_r64_scale4_pertask``):
shared rank 64, task rank 4, scales 4 (applied as is, not divided by the rank),
LoRA dropout 0.05. See docs/methods/mtlora.md for the deviations.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mtdense.models.petl import BackboneHost, BlockRef, LevelRef
from mtdense.models.petl import BasePEFTMethod, per_stage
from mtdense.registry import MODELS
from .lora import LoRABank, target_shape

MODES = ('matrix', 'matrixv2', 'lora_only')
SHARED_TARGETS = ('qkv', 'proj', 'fc1', 'fc2')
TASK_TARGETS = ('proj', 'fc1', 'fc2')


def _apply(modules: Sequence[nn.Module], x: Tensor) -> Tensor:
    for m in modules:
        x = m(x)
    return x


class _TapContext:
    """What the hooks of one tapped block record for its task streams."""

    def __init__(self, shared_unused: bool) -> None:
        #: the shared stream's output of this block is not read (last block, 'matrix')
        self.shared_unused = shared_unused
        self.identity: Optional[Tensor] = None  # block input
        self.proj: Optional[Tensor] = None  # (T, nW * B, N, C) task proj outputs
        self.fc1: Optional[Tensor] = None  # base(fc1)
        self.fc2: Optional[Tensor] = None  # base(fc2)


class _MTLoRAHook:
    """Forward hook of one target linear (a callable object, not a closure, so that a
    deep copy of the model calls the *copied* method)."""

    def __init__(self, method: 'MTLoRA', key: str, role: str, tapped: bool) -> None:
        self.method, self.key, self.role, self.tapped = method, key, role, tapped

    def __call__(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        return self.method._linear_forward(self.key, self.role, self.tapped, args[0], output)


@MODELS.register_module()
class MTLoRA(BasePEFTMethod):
    """MTLoRA: shared LoRA on every block, task LoRA at the last block of every stage,
    task features routed through the patch mergings (see the module docstring).

    Args:
        tasks: task names.
        rank: shared rank r (an int or one per stage).
        task_rank: per-task rank (an int or one per stage).
        shared_scale: s_sh, multiplies the shared product.
        task_scale: s_t, multiplies the task products.
        mode: ``'matrix'`` | ``'matrixv2'`` | ``'lora_only'``.
        lora_dropout: dropout on the shared LoRA input (and on proj's task input).
        train_norms: train every norm the forward uses.
        train_rel_pos: train the relative position bias tables.
        train_patch_embed: train the patch embedding.
        train_merging: train the patch-merging reductions.
    """

    task_specific = True
    #: the outputs are post-merge stage outputs: the host's output norms never run
    uses_output_norms = False

    def __init__(self,
                 tasks: Sequence[str],
                 rank: Union[int, Sequence[int]] = 64,
                 task_rank: Union[int, Sequence[int]] = 4,
                 shared_scale: float = 4.0,
                 task_scale: float = 4.0,
                 mode: str = 'matrix',
                 lora_dropout: float = 0.05,
                 train_norms: bool = True,
                 train_rel_pos: bool = True,
                 train_patch_embed: bool = True,
                 train_merging: bool = True) -> None:
        super().__init__(tasks, train_norms, train_rel_pos, train_patch_embed)
        if mode not in MODES:
            extra = (" (the official 'addition' mode is not implemented, see "
                     'docs/methods/mtlora.md)') if mode in ('add', 'addition') else ''
            raise ValueError(f'MTLoRA: mode={mode!r} is not one of {MODES}{extra}')
        if not 0.0 <= float(lora_dropout) < 1.0:
            raise ValueError(f'MTLoRA: lora_dropout={lora_dropout} must be in [0, 1)')
        for key, value in (('rank', rank), ('task_rank', task_rank)):
            if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                raise ValueError(f'MTLoRA: {key} must be positive, got {value}')
        self.rank_cfg, self.task_rank_cfg = rank, task_rank
        self.shared_scale, self.task_scale = float(shared_scale), float(task_scale)
        self.mode = mode
        self.task_specific = mode != 'lora_only'
        self.train_merging = bool(train_merging)
        self.lora_dropout = nn.Dropout(float(lora_dropout)) if lora_dropout > 0 else nn.Identity()
        self._ctx: Optional[_TapContext] = None

    # ---------------------------------------------------------------- build
    def _build(self, host: BackboneHost) -> None:
        name = type(host).__name__
        if not host.has_stage_forward:
            raise ValueError(
                f'MTLoRA: backbone {name} has no patch merging between stages (a single-scale '
                'ViT); MTLoRA routes every task through each stage\'s patch merging and reads '
                'the post-merge stage outputs, so it needs a hierarchical Swin host (MMSegSwin, '
                'TimmSwin)')
        if getattr(host, 'norm_last', False):
            raise ValueError(
                f'MTLoRA: {name}(norm_last=True) asks for a final norm on the last level, but '
                "MTLoRA's last level is the last block's output as is (as in the official model); "
                'set norm_last=False')
        num_stages = host.num_stages
        ranks = per_stage(self.rank_cfg, num_stages, 'rank', 'MTLoRA')
        task_ranks = per_stage(self.task_rank_cfg, num_stages, 'task_rank', 'MTLoRA')
        self.levels: List[LevelRef] = host.merged_levels()
        self.taps = [lv.block_index for lv in self.levels]
        self.shared = nn.ModuleDict()
        self.task = nn.ModuleDict()
        self._shapes: Dict[Tuple[int, str], Tuple[int, int, int, int]] = {}
        for b in host.blocks:
            tapped = self.task_specific and b.index in self.taps
            if tapped and b.parts is None:  # pragma: no cover - every Swin host sets parts
                raise TypeError(f'MTLoRA: {name} does not describe the parts of block {b.name}')
            for role in SHARED_TARGETS:
                fin, fout = target_shape(b.linears[role])
                module, pname = b.linears[role]
                if pname is not None:  # pragma: no cover - Swin hosts hook plain linears
                    raise TypeError(
                        f'MTLoRA: {b.name}.{role} is not an nn.Linear called as a module')
                key = f'{b.index}_{role}'
                self.shared[key] = LoRABank(1, fin, fout, ranks[b.stage])
                task_r = 0
                if tapped and role in TASK_TARGETS:
                    task_r = task_ranks[b.stage]
                    self.task[key] = LoRABank(self.num_tasks, fin, fout, task_r)
                self._shapes[(b.index, role)] = (fin, fout, ranks[b.stage], task_r)
                self._register(
                    module.register_forward_hook(
                        _MTLoRAHook(self, key, role, tapped and role in TASK_TARGETS)))
            if tapped:
                self._register(b.module.register_forward_pre_hook(self._record_block_input))
        self._stages: List[List[BlockRef]] = [[b for b in host.blocks if b.stage == s]
                                              for s in range(num_stages)]

    def pyramid_levels(self, host: BackboneHost) -> List[LevelRef]:
        """Each stage's output after its patch merging (read by ``AdaptedBackbone``)."""
        return host.merged_levels()

    # --------------------------------------------------------------- hooks
    def _record_block_input(self, module: nn.Module, args: tuple) -> None:
        if self._ctx is not None:
            self._ctx.identity = args[0]

    def _linear_forward(self, key: str, role: str, tapped: bool, x: Tensor,
                        out: Tensor) -> Tensor:
        """Shared LoRA on ``out`` = x W^T + b; at a tapped block, also record the base
        products of the task streams (proj: the task proj outputs themselves)."""
        ctx = self._ctx if tapped else None
        bank = self.shared[key]
        if ctx is None:
            return bank.add_to(out, self.lora_dropout(x), self.shared_scale)
        if role == 'fc2' and ctx.shared_unused and self.mode == 'matrix':
            # the shared output of this block is discarded and 'matrix' task streams
            # read the pretrained product only: the shared fc2 term would be dead work
            ctx.fc2 = out
            return out
        xd = self.lora_dropout(x)
        shared = bank.add_to(out, xd, self.shared_scale)
        base = out if self.mode == 'matrix' else shared
        if role == 'proj':
            fout = out.shape[-1]
            tasks = self.task[key].add_to_groups(
                base.reshape(-1, fout), xd.reshape(-1, xd.shape[-1]), self.task_scale)
            ctx.proj = tasks.view(self.num_tasks, *out.shape)
        else:
            setattr(ctx, role, base)
        return shared

    # -------------------------------------------------------------- forward
    def _tapped_block(self, b: BlockRef, x: Tensor, hw: Tuple[int, int],
                      shared_unused: bool) -> Tuple[Tensor, Tensor]:
        """Shared output (B, ...) and task outputs (T * B, ...) of tapped block ``b``."""
        ctx = _TapContext(shared_unused)
        self._ctx = ctx
        try:
            y = self.host.run_block(b, x, hw)
        finally:
            self._ctx = None
        return y, self._task_streams(b, ctx, hw)

    def _task_streams(self, b: BlockRef, ctx: _TapContext, hw: Tuple[int, int]) -> Tensor:
        parts, n = b.parts, self.num_tasks
        identity = ctx.identity  # (B, ...) block layout
        batch, dim = identity.shape[0], identity.shape[-1]
        # attention residual of every task, from its proj output
        win = parts.proj_drop(ctx.proj).reshape(-1, *ctx.proj.shape[2:])
        attn = parts.attn_drop_path(self.host.attn_windows_to_tokens(b, win, hw))
        y = (attn.view(n, *identity.shape) + identity).view(n * batch, *identity.shape[1:])
        # MLP: task inputs, base products of the shared stream
        v = parts.norm2(y).reshape(n, -1, dim)
        fc1 = self.task[f'{b.index}_fc1']
        f1 = fc1.add_to_groups(ctx.fc1.reshape(-1, fc1.out_features), v, self.task_scale)
        h = _apply(parts.mlp_hidden, f1)
        fc2 = self.task[f'{b.index}_fc2']
        f2 = fc2.add_to_groups(ctx.fc2.reshape(-1, fc2.out_features), h, self.task_scale)
        mlp = parts.mlp_drop_path(_apply(parts.mlp_out, f2).view(n * batch, -1, dim))
        return (y.view(n * batch, -1, dim) + mlp).view(y.shape)

    def forward_features(self, x: Tensor) -> Tuple[List[Tensor], List[bool]]:
        self._check_batch(x)
        host = self.host
        tokens, hw = host.embed(x)
        batch = tokens.shape[0]
        feats: List[Tensor] = []
        last = len(self._stages) - 1
        for s, blocks in enumerate(self._stages):
            tasks = None
            for b in blocks:
                if self.task_specific and b.index == self.taps[s]:
                    tokens, tasks = self._tapped_block(b, tokens, hw, shared_unused=s == last)
                else:
                    tokens = host.run_block(b, tokens, hw)
            if tasks is None:  # 'lora_only': the shared stream's outputs
                merged = host.merge(s, tokens, hw)
                if merged is not None:
                    tokens, hw = merged
                feats.append(host.tokens_to_nchw(tokens, hw))
                continue
            # shared and task maps through the stage's patch merging in one call
            merged = host.merge(s, torch.cat([tokens, tasks]), hw)
            if merged is not None:
                both, hw = merged
                tokens, tasks = both[:batch], both[batch:]
            feats.append(host.tokens_to_nchw(tasks, hw))
        return feats, [self.task_specific] * len(feats)

    # ------------------------------------------------------------ training
    def backbone_trainable_names(self, host: BackboneHost) -> Set[str]:
        return set(host.merge_param_names()) if self.train_merging else set()

    def _trained_backbone_names(self, host: BackboneHost) -> Set[str]:
        """Every backbone parameter this configuration trains (switches included)."""
        names = self.backbone_trainable_names(host)
        if self.train_norms:
            names |= set(host.norm_param_names()) - set(host.output_norm_param_names())
        if self.train_rel_pos:
            names |= set(host.rel_pos_param_names())
        if self.train_patch_embed:
            names |= set(host.patch_embed_param_names())
        return names

    def expected_num_params(self) -> int:
        lora = sum(
            LoRABank.num_params(1, fin, fout, r)
            + LoRABank.num_params(self.num_tasks, fin, fout, tr)
            for fin, fout, r, tr in self._shapes.values())
        params = dict(self.host.backbone.named_parameters())
        return lora + int(sum(params[n].numel() for n in self._trained_backbone_names(self.host)))

    def inert_param_names(self) -> List[str]:
        """Trainable parameters (names in this module) that no output depends on.

        In ``'matrix'`` mode the shared fc2 LoRA of the last block of the last stage
        only feeds that block's shared output, which no level reads: the official code
        computes it, discards it and counts it as trainable (it never gets a gradient).
        It is kept here too, so that the trainable count is the official one, but not
        computed.
        """
        if not self.task_specific or self.mode != 'matrix':
            return []
        key = f'{self.taps[-1]}_fc2'
        return [f'shared.{key}.A', f'shared.{key}.B']

    def task_param_counts(self) -> Dict[str, int]:
        n = sum(
            LoRABank.num_params(1, fin, fout, tr) for fin, fout, _, tr in self._shapes.values())
        return {t: n for t in self.tasks}
