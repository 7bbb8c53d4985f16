"""MTLoRA against the official model's equations and counts.

* the task streams equal a per-task reference written from the official equations on
  a hook-free copy of the backbone (shared LoRA merged into its weights), with the
  library's own attention and patch merging, in both task modes and on both Swin hosts;
* the shared stream alone ('lora_only') equals the merged-weight backbone;
* at init every level equals the unmodified backbone's post-merge stage output;
* qkv / attention run once per block, every stage merges all streams in one call;
* the trainable set is the official one; the official r64 model (its heads) has the
  official parameter and MAC counts at 448 x 448 for T = 1, 2, 4.
"""
import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import copy
import re

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mtdense.analysis.flops import count_model_flops
from mtdense.models.backbones import AdaptedBackbone
from mtdense.registry import MODELS
from mtdense.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[2]

TASKS = ['semseg', 'normals', 'depth']
ARCH = dict(depths=(2, 1, 2, 1), num_heads=(1, 1, 2, 2), window_size=4, drop_path_rate=0.)
HOSTS = {
    'mmseg_swin': dict(type='MMSegSwin', embed_dims=16, **ARCH),
    'timm_swin': dict(type='TimmSwin', img_size=64, embed_dim=16, **ARCH),
}
# not a multiple of the window: window padding, odd-size merges
SIZES = {'mmseg_swin': (72, 56), 'timm_swin': (72, 56)}
PEFT = dict(type='MTLoRA', rank=4, task_rank=2, shared_scale=2.0, task_scale=3.0)


def _build(host: str, tasks=TASKS, **peft) -> AdaptedBackbone:
    torch.manual_seed(0)
    return AdaptedBackbone(backbone=HOSTS[host], peft={**PEFT, **peft}, tasks=tasks)


def _perturb(model: AdaptedBackbone, amount: float = 0.3) -> None:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(amount * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _images(host: str, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 3, *SIZES[host], dtype=torch.float64)


# ------------------------------------------------------------- the reference
def _merged_copy(model: AdaptedBackbone):
    """Hook-free copy of the backbone with W + s_sh (A B)^T in every target, and the
    pretrained weights of the targets."""
    plain = copy.deepcopy(model)
    plain.peft.detach()
    pretrained = {}
    with torch.no_grad():
        for b in plain.host.blocks:
            for role in ('qkv', 'proj', 'fc1', 'fc2'):
                lin = b.linears[role][0]
                pretrained[(b.index, role)] = lin.weight.clone()
                bank = plain.peft.shared[f'{b.index}_{role}']
                lin.weight += plain.peft.shared_scale * (bank.A[0] @ bank.B[0]).t()
    return plain, pretrained


def _library_parts(kind: str, plain: AdaptedBackbone):
    """Per stage: tapped block, its attention call, MLP modules and the merge."""
    bb = plain.host.backbone
    out = []
    if kind == 'mmseg_swin':
        for s, stage in enumerate(bb.stages):
            blk = stage.blocks[-1]
            down = stage.downsample
            out.append(dict(
                block=blk, proj=blk.attn.w_msa.proj, fc1=blk.ffn.layers[0][0],
                fc2=blk.ffn.layers[1], act=blk.ffn.layers[0][1], norm2=blk.norm2,
                attn=lambda x, hw, blk=blk: blk.attn(blk.norm1(x), hw),
                merge=None if down is None else (lambda z, hw, down=down: down(z, hw)),
                to_nchw=lambda z, hw: z.view(z.shape[0], hw[0], hw[1], -1).permute(0, 3, 1, 2)))
    else:
        for s, stage in enumerate(bb.layers):
            blk = stage.blocks[-1]
            nxt = bb.layers[s + 1].downsample if s + 1 < len(bb.layers) else None
            out.append(dict(
                block=blk, proj=blk.attn.proj, fc1=blk.mlp.fc1, fc2=blk.mlp.fc2, act=blk.mlp.act,
                norm2=blk.norm2, attn=lambda x, hw, blk=blk: blk._attn(blk.norm1(x)),
                merge=None if nxt is None else (lambda z, hw, d=nxt: (d(z), z.shape[1:3])),
                to_nchw=lambda z, hw: z.permute(0, 3, 1, 2)))
    return out


def _reference(kind: str, model: AdaptedBackbone, x: torch.Tensor, mode: str):
    """{task: [levels]} from the official equations, one task at a time."""
    plain, pretrained = _merged_copy(model)
    method, host = plain.peft, plain.host
    parts = _library_parts(kind, plain)
    inputs = {}
    for s, p in enumerate(parts):
        p['block'].register_forward_pre_hook(
            lambda m, a, s=s: inputs.__setitem__(s, (a[0], a[1] if len(a) > 1 else None)))
    with torch.no_grad():
        host.forward_main(x)  # the shared stream: the merged-weight backbone
    s_t = method.task_scale
    feats = {t: [] for t in model.tasks}
    with torch.no_grad():
        for s, p in enumerate(parts):
            xin, hw = inputs[s]
            idx = host.merged_levels()[s].block_index
            captured = {}
            h1 = p['proj'].register_forward_hook(lambda m, a, o: captured.update(a=a[0], out=o))
            y_shared = xin + p['attn'](xin, hw)
            h1.remove()
            a = captured['a']

            def base(role, inp, merged_out):
                if mode == 'matrixv2':
                    return merged_out
                lin = p[role]
                return F.linear(inp, pretrained[(idx, role)], lin.bias)

            v = p['norm2'](y_shared)
            f1_shared = p['fc1'](v)
            h_shared = p['act'](f1_shared)
            base_proj = base('proj', a, captured['out'])
            base_fc1 = base('fc1', v, f1_shared)
            base_fc2 = base('fc2', h_shared, p['fc2'](h_shared))
            for t_i, task in enumerate(model.tasks):
                def term(role, inp):
                    bank = method.task[f'{idx}_{role}']
                    return s_t * (inp @ bank.A[t_i]) @ bank.B[t_i]

                task_proj = base_proj + term('proj', a)
                h2 = p['proj'].register_forward_hook(lambda m, a_, o: task_proj)
                y_t = xin + p['attn'](xin, hw)
                h2.remove()
                v_t = p['norm2'](y_t)
                if kind == 'timm_swin':  # the timm block runs its MLP on (B, H*W, C)
                    v_t = v_t.reshape(v_t.shape[0], -1, v_t.shape[-1])
                h_t = p['act'](base_fc1.reshape(v_t.shape[:-1] + (-1, )) + term('fc1', v_t))
                f2_t = base_fc2.reshape(v_t.shape) + term('fc2', h_t)
                z_t = (y_t.reshape(v_t.shape) + f2_t).reshape(y_t.shape)
                if p['merge'] is not None:
                    z_t, out_hw = p['merge'](z_t, hw)
                else:
                    out_hw = hw
                feats[task].append(p['to_nchw'](z_t, out_hw))
    return feats


@pytest.mark.parametrize('kind', list(HOSTS))
@pytest.mark.parametrize('mode', ['matrix', 'matrixv2'])
def test_task_streams_follow_the_official_equations(kind, mode):
    model = _build(kind, mode=mode).double().eval()
    _perturb(model)
    x = _images(kind)
    with torch.no_grad():
        out = model(x)
    ref = _reference(kind, model, x, mode)
    for t in TASKS:
        for lvl, (a, b) in enumerate(zip(out[t], ref[t])):
            assert a.shape == b.shape, (t, lvl)
            assert (a - b).abs().max().item() < 1e-10, (t, lvl, (a - b).abs().max().item())
    # the tasks really differ, and the two modes differ from each other
    assert not torch.allclose(out['semseg'][0], out['depth'][0])
    other = _build(kind, mode='matrixv2' if mode == 'matrix' else 'matrix').double().eval()
    _perturb(other)
    with torch.no_grad():
        assert not torch.allclose(other(x)['semseg'][0], out['semseg'][0])


def _post_merge_outputs(model: AdaptedBackbone, x: torch.Tensor):
    """The library forward of ``model``'s backbone; per stage, its merged tokens (the last
    stage: its last block's output), captured by hooks on the library's modules."""
    host, outs, hooks = model.host, {}, []
    bb = host.backbone
    for s, lv in enumerate(host.merged_levels()):
        if hasattr(bb, 'stages'):  # mmseg: merging at the end of the stage
            down = bb.stages[s].downsample
        else:  # timm: merging at the start of the next stage
            down = bb.layers[s + 1].downsample if s + 1 < len(bb.layers) else None
        mod = host.blocks[lv.block_index].module if down is None else down
        hooks.append(mod.register_forward_hook(
            lambda m, a, o, s=s: outs.__setitem__(s, o[0] if isinstance(o, tuple) else o)))
    with torch.no_grad():
        host.forward_main(x)
    for h in hooks:
        h.remove()
    return [outs[s] for s in range(len(outs))]


@pytest.mark.parametrize('kind', list(HOSTS))
def test_shared_stream_is_the_merged_weight_backbone(kind):
    model = _build(kind, mode='lora_only').double().eval()
    assert not model.peft.task_specific and len(model.peft.task) == 0
    _perturb(model)
    x = _images(kind)
    with torch.no_grad():
        out = model(x)
    assert out['semseg'] is out['depth']
    plain, _ = _merged_copy(model)
    raw = _post_merge_outputs(plain, x)
    hw = [tuple(f.shape[-2:]) for f in out['semseg']]
    for s, f in enumerate(out['semseg']):
        ref = plain.host.tokens_to_nchw(raw[s], hw[s])
        assert (f - ref).abs().max().item() < 1e-10, s


@pytest.mark.parametrize('kind', list(HOSTS))
@pytest.mark.parametrize('mode', ['matrix', 'matrixv2', 'lora_only'])
def test_identity_at_init_against_the_unmodified_backbone(kind, mode):
    model = _build(kind, mode=mode).double().eval()
    x = _images(kind)
    with torch.no_grad():
        out = model(x)
    model.peft.detach()
    raw = _post_merge_outputs(model, x)
    for s in range(4):
        hw = tuple(out['semseg'][s].shape[-2:])
        ref = model.host.tokens_to_nchw(raw[s], hw)
        for t in TASKS:
            assert (out[t][s] - ref).abs().max().item() <= 1e-12, (t, s)


def test_pyramid_is_post_merge():
    for kind in HOSTS:
        model = _build(kind)
        assert model.out_channels == [32, 64, 128, 128]
        assert [lv.stride for lv in model.pyramid_levels()] == [8, 16, 32, 32]
        with torch.no_grad():
            out = model.eval()(torch.randn(1, 3, 64, 64))
        assert [tuple(f.shape[1:]) for f in out['semseg']] == [(32, 8, 8), (64, 4, 4),
                                                               (128, 2, 2), (128, 2, 2)]


def test_attention_once_per_block_and_one_merge_per_stage():
    model = _build('mmseg_swin').eval()
    bb = model.host.backbone
    calls = {}

    def spy(name):
        return lambda m, a, o: calls.setdefault(name, []).append(a[0].shape[0])

    for s, stage in enumerate(bb.stages):
        for j, blk in enumerate(stage.blocks):
            blk.attn.w_msa.qkv.register_forward_hook(spy(f'qkv{s}.{j}'))
            blk.attn.w_msa.register_forward_hook(spy(f'attn{s}.{j}'))
        if stage.downsample is not None:
            stage.downsample.register_forward_hook(spy(f'merge{s}'))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    windows = {0: 16, 1: 4, 2: 1, 3: 1}  # 16x16 tokens / 4x4 windows, 8x8, 4x4, 2x2 (padded)
    for s, stage in enumerate(bb.stages):
        for j in range(len(stage.blocks)):
            # one call each, on the image batch's windows: never repeated per task
            assert calls[f'qkv{s}.{j}'] == calls[f'attn{s}.{j}'] == [2 * windows[s]]
        if stage.downsample is not None:
            assert calls[f'merge{s}'] == [2 * (1 + len(TASKS))]  # shared + T tasks at once


def test_trainable_set_is_the_official_one():
    model = _build('mmseg_swin')
    bb = model.host.backbone
    trained = {n for n, p in bb.named_parameters() if p.requires_grad}
    expected = set()
    for n, _ in bb.named_parameters():
        if n.startswith('patch_embed.') or 'relative_position_bias_table' in n:
            expected.add(n)
        elif re.search(r'\.blocks\.\d+\.norm[12]\.', n) or '.downsample.' in n:
            expected.add(n)  # block norms, patch-merging norm + reduction
    assert trained == expected
    assert not any(n.startswith(('norm0.', 'norm1.', 'norm2.', 'norm3.')) for n in trained)
    assert all(p.requires_grad for p in model.peft.parameters())
    # the switches turn the official extras off one by one
    lean = _build('mmseg_swin', train_norms=False, train_rel_pos=False, train_patch_embed=False,
                  train_merging=False)
    assert not any(p.requires_grad for p in lean.host.backbone.parameters())
    r = lean.param_groups_report()
    assert r['trainable'] == r['method_trainable'] == lean.peft.expected_num_params()


def test_task_drop_paths_are_drawn_per_task_in_training():
    # the last block drops with p = 0.5: 8 images x 2 drop paths give two tasks the same
    # draws with probability 2^-16
    model = AdaptedBackbone(backbone={**HOSTS['mmseg_swin'], 'drop_path_rate': 0.5},
                            peft={**PEFT, 'lora_dropout': 0.0}, tasks=TASKS)
    x = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(0)
        train = model.train()(x)
        same = model.eval()(x)
    # at init the task streams equal the shared one; only the drop-path draws differ
    assert torch.equal(same['semseg'][3], same['depth'][3])
    assert not torch.equal(train['semseg'][3], train['depth'][3])


def test_errors_name_the_host_and_the_setting():
    with pytest.raises(ValueError, match='MMSegViT has no patch merging'):
        AdaptedBackbone(backbone=dict(type='MMSegViT', img_size=32, patch_size=16, embed_dims=16,
                                      num_layers=4, num_heads=2),
                        peft=dict(type='MTLoRA'), tasks=['a'])
    with pytest.raises(ValueError, match='TimmViT has no patch merging'):
        AdaptedBackbone(backbone=dict(type='TimmViT', img_size=32, embed_dim=16, depth=4,
                                      num_heads=2), peft=dict(type='MTLoRA'), tasks=['a'])
    with pytest.raises(ValueError, match='norm_last=True'):
        AdaptedBackbone(backbone={**HOSTS['timm_swin'], 'norm_last': True},
                        peft=dict(type='MTLoRA'), tasks=['a'])
    with pytest.raises(ValueError, match="'addition' mode is not implemented"):
        _build('mmseg_swin', mode='addition')
    with pytest.raises(ValueError, match='task_rank must be positive'):
        _build('mmseg_swin', task_rank=0)
    with pytest.raises(ValueError, match='rank=\\[4, 4\\] has 2 entries'):
        _build('mmseg_swin', rank=[4, 4])


def test_per_stage_ranks_and_closed_form_counts():
    model = _build('timm_swin', rank=[2, 3, 4, 5], task_rank=[1, 1, 2, 2])
    assert [model.peft.shared[f'{b.index}_fc1'].rank for b in model.host.blocks] == \
        [2, 2, 3, 4, 4, 5]
    assert [model.peft.task[f'{i}_proj'].rank for i in model.peft.taps] == [1, 1, 2, 2]
    r = model.param_groups_report()
    assert r['method_expected'] == r['method_trainable'] + r['backbone_trainable']
    dims = [16, 32, 64, 128]
    per_task = sum(rk * (2 * d + 5 * d + 5 * d) for rk, d in zip([1, 1, 2, 2], dims))
    assert r['per_task_trainable'] == {t: per_task for t in TASKS}


# ------------------------------------------------- the official r64 model, 448 x 448
# Measured on the official code (scale-lab/MTLoRA, mtlora_tiny_448_r64_scale4_pertask,
# PASCAL-Context task heads) with mtdense.analysis.flops' counter: GMACs (total,
# backbone) and trainable parameters. The official T = 2 / 4 task sets are
# semseg + normals and semseg, normals, sal, human_parts (21 / 3 / 1 / 7 outputs).
OFFICIAL = {
    1: (['semseg'], 25.73, 24.67, 6_691_359),
    2: (['semseg', 'normals'], 27.55, 25.49, 7_241_730),
    4: (['semseg', 'normals', 'saliency', 'human_parts'], 31.19, 27.14, 8_344_634),
}


@pytest.mark.parametrize('num_tasks', sorted(OFFICIAL))
def test_official_model_counts_at_448(num_tasks):
    tasks, gmacs, backbone_gmacs, trainable = OFFICIAL[num_tasks]
    register_all_modules()
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/models/swin_t_mmseg_mtlora_official.py'))
    cfg.model.tasks = tasks
    cfg.model.num_classes = 21
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable
    flops = count_model_flops(model, 448)
    # the official values are rounded to 0.01 G
    assert round(flops['total'] / 1e9, 2) == gmacs
    assert round(flops['backbone'] / 1e9, 2) == backbone_gmacs
    # what runs is what the trace keeps: nothing is computed and discarded
    assert flops['executed_minus_traced'] == {'products': 0, 'norms': 0, 'resampling': 0}
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 448, 448), mode='tensor')
    assert {t: tuple(o.shape[1:]) for t, o in out.items()} == {
        t: (model.heads[t].out_channels, 448, 448) for t in tasks}


# ------------------------------------------------------------------- heads
def test_official_head_structure_and_size():
    from mtdense.models.heads import MTLoRAHRNetHead
    head = MTLoRAHRNetHead(in_channels=[192, 384, 768, 768], out_channels=21)
    # official: Downsampler 1x1 convs (no bias) + HighResolutionHead(270 -> 1080 -> 21)
    assert sum(p.numel() for p in head.parameters()) == 183_168 + 317_541
    feats = [torch.randn(2, c, s, s) for c, s in zip([192, 384, 768, 768], [14, 7, 4, 4])]
    assert head.eval()(feats).shape == (2, 21, 14, 14)
    with pytest.raises(ValueError, match='one entry per pyramid level'):
        MTLoRAHRNetHead(in_channels=[8, 8, 8, 8], out_channels=3, channels=(4, 4))


@pytest.mark.parametrize('config', ['swin_t_mmseg_mtlora', 'swin_t_mmseg_mtlora_official'])
def test_models_on_the_post_merge_pyramid_predict_at_input_size(config):
    register_all_modules()
    cfg = Config.fromfile(str(ROOT / f'configs/_base_/models/{config}.py'))
    cfg.model.tasks = ['semseg', 'saliency', 'normals']
    cfg.model.num_classes = 5
    cfg.model.backbone.backbone.update(embed_dims=16, depths=(1, 1, 2, 1),
                                       num_heads=(1, 1, 2, 2), window_size=4)
    cfg.model.backbone.peft.update(rank=4, task_rank=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    _perturb(model.backbone)
    x = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        out = model(x, mode='tensor')
        assert {t: tuple(o.shape) for t, o in out.items()} == {
            'semseg': (2, 5, 72, 56), 'saliency': (2, 1, 72, 56), 'normals': (2, 3, 72, 56)}
        if config == 'swin_t_mmseg_mtlora':
            # the task-batched light heads read the stacked post-merge pyramid as well
            assert model.heads_batched()
            model.batch_heads = False
            loop = model(x, mode='tensor')
            for t in out:
                assert torch.allclose(out[t], loop[t], atol=1e-5), t
        preds = model(x, mode='predict')
    assert preds[0].pred_semseg.data.shape == (1, 72, 56)
