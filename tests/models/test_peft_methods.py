"""The PETL baselines behind ``AdaptedBackbone(peft=dict(type=...))``.

For every method and every backbone family: identity with the unmodified
backbone at init, task-specific features only for the methods that should
have them, gradients only on what the method trains, and the closed-form
parameter count.
"""
import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import re

import pytest
import torch

from mtdense.models.adapters import MTLoRA
from mtdense.models.backbones import AdaptedBackbone

TASKS = ['semseg', 'normals', 'depth']
BACKBONES = {
    'mmseg_swin': dict(type='MMSegSwin', embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2),
                       window_size=4, drop_path_rate=0.),
    'timm_swin': dict(type='TimmSwin', img_size=64, embed_dim=16, depths=(1, 1, 2, 1),
                      num_heads=(1, 1, 2, 2), window_size=4, drop_path_rate=0.),
    'mmseg_vit': dict(type='MMSegViT', img_size=32, patch_size=16, embed_dims=16, num_layers=4,
                      num_heads=2, final_norm=True),
    'timm_vit': dict(type='TimmViT', img_size=32, embed_dim=16, depth=4, num_heads=2),
}
SIZES = {'mmseg_swin': 64, 'timm_swin': 64, 'mmseg_vit': 32, 'timm_vit': 32}
METHODS = {
    'FullFineTune': dict(type='FullFineTune'),
    'SingleTaskFineTune': dict(type='SingleTaskFineTune'),
    'DecoderOnly': dict(type='DecoderOnly'),
    'BitFit': dict(type='BitFit'),
    'PerTaskAdapter': dict(type='PerTaskAdapter', bottleneck=4),
    'PerTaskLoRA': dict(type='PerTaskLoRA', rank=2),
    'MTLoRA': dict(type='MTLoRA', rank=4, task_rank=2),
}
TASK_SPECIFIC = {'SingleTaskFineTune', 'PerTaskAdapter', 'PerTaskLoRA', 'MTLoRA'}


def _build(backbone: str, peft: dict, tasks=TASKS) -> AdaptedBackbone:
    torch.manual_seed(0)
    return AdaptedBackbone(backbone=BACKBONES[backbone], peft=peft, tasks=tasks)


def _unsupported(backbone: str, method: str) -> bool:
    # MTLoRA routes tasks through patch merging: Swin hosts only (error tested below)
    return method == 'MTLoRA' and backbone.endswith('_vit')


def _inert(model: AdaptedBackbone) -> set:
    """Trainable parameters no output depends on (MTLoRA 'matrix', as the official code)."""
    names = getattr(model.peft, 'inert_param_names', lambda: [])()
    return {f'peft.{n}' for n in names}


def _plain_features(model: AdaptedBackbone, x):
    """The hook-free wrapped backbone's outputs for what the method reads: the host's
    levels (+ neck), or for MTLoRA each stage after its patch merging, captured on the
    library's own modules during the library's forward."""
    host = model.host
    if not isinstance(model.peft, MTLoRA):
        plain = host.forward_main(x)
        return list(model.neck(plain)) if model.neck is not None else plain
    bb, outs, hooks = host.backbone, {}, []
    for s, lv in enumerate(host.merged_levels()):
        if hasattr(bb, 'stages'):
            down = bb.stages[s].downsample
        else:
            down = bb.layers[s + 1].downsample if s + 1 < len(bb.layers) else None
        mod = host.blocks[lv.block_index].module if down is None else down
        hooks.append(mod.register_forward_hook(
            lambda m, a, o, s=s: outs.__setitem__(s, o[0] if isinstance(o, tuple) else o)))
    host.forward_main(x)
    for h in hooks:
        h.remove()
    return [outs[s] for s in range(len(outs))]


def _expected_trainable(model: AdaptedBackbone, method: str) -> set:
    bb = {f'host.backbone.{n}' for n, _ in model.host.backbone.named_parameters()}
    neck = {n for n, _ in model.named_parameters() if n.startswith('neck.')}
    own = {n for n, _ in model.named_parameters() if n.startswith('peft.')}
    if method == 'FullFineTune':
        return bb | neck
    if method == 'SingleTaskFineTune':
        return bb | neck | own  # own = the per-task backbone copies
    if method == 'DecoderOnly':
        return neck
    if method == 'BitFit':
        return {n for n in bb if n.endswith('bias')} | neck
    if method == 'MTLoRA':
        # the official set: LoRA, patch embedding, every norm the forward uses (not the
        # output norms), relative position tables, patch-merging reductions
        used = {n for n in bb if 'patch_embed.' in n or 'relative_position_bias_table' in n
                or re.search(r'\.blocks\.\d+\.norm[12]\.', n) or '.downsample.' in n}
        return own | neck | used
    return own | neck


@pytest.mark.parametrize('backbone', list(BACKBONES))
@pytest.mark.parametrize('method', list(METHODS))
def test_method_contract(backbone, method):
    if _unsupported(backbone, method):
        with pytest.raises(ValueError, match='has no patch merging'):
            _build(backbone, METHODS[method])
        return
    model = _build(backbone, METHODS[method]).double()
    size = SIZES[backbone]
    x = torch.randn(2, 3, size, size, dtype=torch.float64)

    # 1) identity at init: the unmodified wrapped backbone (hooks removed) gives the same features
    model.eval()
    with torch.no_grad():
        out = model(x)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == _expected_trainable(model, method)

    # 2) the closed-form count equals the modules
    report = model.param_groups_report()
    bb_trainable = report['backbone_trainable'] + report['backbone_copies_total']
    assert model.peft.expected_num_params() == report['method_trainable'] + bb_trainable
    assert report['trainable'] == sum(p.numel() for p in model.parameters() if p.requires_grad)

    # 3) perturb what the method trains: tasks differ exactly for the task-specific methods
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and not n.startswith('neck.'):
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        moved = model(x)
    if method in TASK_SPECIFIC:
        for lvl in range(4):
            assert not torch.allclose(moved['semseg'][lvl], moved['depth'][lvl]), lvl
            assert not torch.allclose(moved['normals'][lvl], moved['depth'][lvl]), lvl
    else:
        assert moved['semseg'] is moved['normals'] is moved['depth']
    if method != 'DecoderOnly':
        assert not torch.allclose(moved['semseg'][-1], out['semseg'][-1])

    # 4) gradients reach exactly the trainable parameters
    model.train()
    feats = model(x)
    loss = sum((f * (k + 1)).square().mean() for k, t in enumerate(TASKS) for f in feats[t])
    assert loss.requires_grad == bool(trainable)
    if trainable:
        loss.backward()
    inert = _inert(model)
    for n, p in model.named_parameters():
        if p.requires_grad and n not in inert:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n

    # 5) identity at init, checked last on a fresh model against the hook-free backbone
    fresh = _build(backbone, METHODS[method]).double().eval()
    with torch.no_grad():
        adapted = fresh(x)
        fresh.peft.detach()
        plain = _plain_features(fresh, x)
    for t in TASKS:
        for a, b in zip(adapted[t], plain):
            if b.dim() != 4:  # mmseg post-merge tokens (B, h * w, C)
                b = fresh.host.tokens_to_nchw(b, tuple(a.shape[-2:]))
            elif b.shape[1:] != a.shape[1:]:  # timm: NHWC tokens
                b = b.permute(0, 3, 1, 2)
            assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-6


def _attention_batches(model, module_getter, x):
    calls = []
    module_getter(model).register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    with torch.no_grad():
        model.eval()(x)
    return calls


def test_per_task_adapter_runs_one_backbone_pass_per_task():
    x = torch.randn(2, 3, 64, 64)
    get = lambda m: m.host.backbone.stages[3].blocks[0].attn.w_msa  # noqa: E731
    one = _attention_batches(_build('mmseg_swin', METHODS['PerTaskAdapter'], tasks=['a']), get, x)
    three = _attention_batches(
        _build('mmseg_swin', METHODS['PerTaskAdapter'], tasks=['a', 'b', 'c']), get, x)
    assert len(one) == len(three) == 1 and three[0] == 3 * one[0]


def test_mtlora_computes_attention_once_even_at_tapped_blocks():
    model = _build('mmseg_swin', METHODS['MTLoRA'])
    x = torch.randn(2, 3, 64, 64)
    stage2 = model.host.backbone.stages[2].blocks
    inner = _attention_batches(model, lambda m: stage2[0].attn.w_msa, x)
    tapped = _attention_batches(model, lambda m: stage2[1].attn.w_msa, x)
    assert len(inner) == 2 and inner[0] == inner[1]  # two forwards above, shared stream only
    # the tapped (last) block of the stage: qkv and attention on the image batch only; the
    # task terms start at proj (tests/models/test_mtlora.py checks them)
    assert tapped == [inner[0]]  # (its hook was added before the second forward)


def test_mmseg_vit_lora_loops_over_tasks_with_parametrised_attention():
    model = _build('mmseg_vit', METHODS['PerTaskLoRA'])
    mha = model.host.backbone.layers[0].attn.attn
    assert torch.nn.utils.parametrize.is_parametrized(mha, 'in_proj_weight')
    calls = _attention_batches(model, lambda m: m.host.backbone.layers[0],
                               torch.randn(2, 3, 32, 32))
    assert calls == [2, 2, 2]  # one pass per task, each with the original batch


def test_single_task_copies_are_independent():
    model = _build('timm_swin', METHODS['SingleTaskFineTune']).eval()
    assert len(model.peft.copies) == len(TASKS) - 1
    report = model.param_groups_report()
    assert report['per_task_trainable'] == {t: report['backbone_total'] for t in TASKS}
    assert report['trainable'] == len(TASKS) * report['backbone_total']
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model.peft.copies[1].layers[3].blocks[0].mlp.fc2.bias.add_(1.0)  # the 'depth' copy
        out = model(x)
    assert torch.allclose(out['semseg'][3], out['normals'][3])
    assert not torch.allclose(out['semseg'][3], out['depth'][3])


def test_unknown_method_and_bad_arguments():
    with pytest.raises(KeyError):
        _build('mmseg_swin', dict(type='NoSuchMethod'))
    with pytest.raises(ValueError, match='targets'):
        _build('mmseg_swin', dict(type='PerTaskLoRA', targets=['qkv', 'bogus']))
    with pytest.raises(ValueError, match='rank must be positive'):
        _build('mmseg_swin', dict(type='MTLoRA', rank=0))


@pytest.mark.parametrize('backbone', ['mmseg_swin', 'mmseg_vit'])
@pytest.mark.parametrize('method', list(METHODS) + ['VMTAdapter', 'VMTAdapterLite'])
def test_deepcopy_computes_with_the_copy(backbone, method):
    """copy.deepcopy (EMA, model soups) gives a model whose hooks use its own parameters."""
    import copy
    if _unsupported(backbone, method):
        backbone = 'timm_swin'  # MTLoRA needs a Swin host: check the other Swin instead
    model = _build(backbone, METHODS.get(method, dict(type=method))).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    clone = copy.deepcopy(model)
    x = torch.randn(2, 3, SIZES[backbone], SIZES[backbone], dtype=torch.float64)
    feats = clone(x)
    loss = sum(f.square().mean() for t in TASKS for f in feats[t])
    if loss.requires_grad:  # decoder-only on Swin trains nothing in the backbone
        loss.backward()
    inert = _inert(clone)
    for (n, p), q in zip(model.named_parameters(), clone.parameters()):
        assert p.grad is None, n  # nothing flows into the original
        if q.requires_grad and n not in inert:
            assert q.grad is not None, n
    with torch.no_grad():
        for p in clone.parameters():
            if p.requires_grad:
                p.add_(1.0)
        moved, orig = clone(x), model(x)
    if any(p.requires_grad for n, p in clone.named_parameters() if not n.startswith('neck.')):
        assert not torch.allclose(moved['semseg'][-1], orig['semseg'][-1])
