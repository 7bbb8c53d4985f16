"""VMT-Adapter / VMT-Adapter-Lite (docs/methods.md)."""
import copy

import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import timm
import torch
import torch.nn.functional as F
from mmseg.models.backbones import SwinTransformer, VisionTransformer

from mtdense.models.adapters import VMTAdapter, VMTAdapterLite
from mtdense.models.backbones import AdaptedBackbone

TASKS = ['semseg', 'human_parts', 'saliency']
MM_SWIN = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=4,
               drop_path_rate=0.)
TIMM_SWIN = dict(img_size=64, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2),
                 window_size=4, drop_path_rate=0.)
MM_VIT = dict(img_size=64, patch_size=16, embed_dims=32, num_layers=4, num_heads=2,
              final_norm=True, out_indices=[0, 1, 2, 3])
TIMM_VIT = dict(img_size=64, embed_dim=32, depth=4, num_heads=2)


def _reference_and_checkpoint(kind: str, tmp_path):
    """An unmodified library backbone, its weights file, and a function giving its outputs."""
    torch.manual_seed(0)
    if kind == 'mmseg_swin':
        ref = SwinTransformer(**MM_SWIN)
        ref.init_weights()
        cfg = dict(type='MMSegSwin', **MM_SWIN)
        run = lambda x: list(ref(x))  # noqa: E731
    elif kind == 'timm_swin':
        ref = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, num_classes=0,
                                strict_img_size=False, **TIMM_SWIN)
        cfg = dict(type='TimmSwin', model_name='swin_tiny_patch4_window7_224', **TIMM_SWIN)
        run = lambda x: ref.forward_intermediates(x, intermediates_only=True)  # noqa: E731
    elif kind == 'mmseg_vit':
        ref = VisionTransformer(**MM_VIT)
        ref.init_weights()
        cfg = dict(type='MMSegViT', **MM_VIT)
        run = lambda x: list(ref(x))  # noqa: E731
    else:
        ref = timm.create_model('vit_base_patch16_224', pretrained=False, num_classes=0,
                                dynamic_img_size=True, **TIMM_VIT)
        cfg = dict(type='TimmViT', model_name='vit_base_patch16_224', **TIMM_VIT)
        run = lambda x: ref.forward_intermediates(x, indices=[0, 1, 2, 3],  # noqa: E731
                                                  intermediates_only=True)
    path = tmp_path / f'{kind}.pth'
    torch.save(ref.state_dict(), path)
    return ref.double().eval(), run, cfg, str(path)


def _perturb(module: torch.nn.Module, std: float = 0.2, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)


@pytest.mark.parametrize('kind', ['mmseg_swin', 'timm_swin', 'mmseg_vit', 'timm_vit'])
@pytest.mark.parametrize('peft', [dict(type='VMTAdapter'), dict(type='VMTAdapterLite'),
                                  dict(type='VMTAdapter', kem='lowrank', kem_rank=2),
                                  dict(type='VMTAdapterLite', kem='scale')])
def test_identity_at_init_against_unmodified_backbone(kind, peft, tmp_path):
    ref, run, cfg, path = _reference_and_checkpoint(kind, tmp_path)
    model = AdaptedBackbone(backbone=cfg, peft=peft, tasks=TASKS, checkpoint=path).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        expect = run(x)
        if model.neck is not None:
            expect = list(model.neck(expect))
    for task in TASKS:
        assert len(out[task]) == 4
        for a, b in zip(out[task], expect):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() <= 1e-6
    # at init every task's features are equal, though computed per task
    assert all(torch.equal(out[TASKS[0]][i], out[t][i]) for t in TASKS for i in range(4))


def _model(peft: dict, tasks=TASKS, backbone=None) -> AdaptedBackbone:
    torch.manual_seed(0)
    backbone = backbone or dict(type='MMSegSwin', **MM_SWIN)
    return AdaptedBackbone(backbone=backbone, peft=peft, tasks=tasks)


def test_equations_at_a_tapped_block_after_training_like_perturbation():
    """Recompute x_next and z_t of stage 0's tapped block by hand (mmseg Swin)."""
    model = _model(dict(type='VMTAdapter', bottleneck=4, scale=0.7)).double().eval()
    _perturb(model.peft)
    block = model.host.backbone.stages[0].blocks[-1]
    seen = {}
    block.register_forward_pre_hook(lambda m, args: seen.update(x=args[0], hw=args[1]))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        xin, hw = seen['x'], seen['hw']
        # the unmodified SwinBlock, written out (mmseg swin.py SwinBlock._inner_forward)
        x_attn = xin + block.attn(block.norm1(xin), hw)
        u = block.norm2(x_attn)
        mlp = block.ffn.layers(u)
        adapter = model.peft.adapters[model.host.levels[0].block_index]
        kem = model.peft.kems[str(model.host.levels[0].block_index)]
        h = F.gelu(u @ adapter.down.weight.t() + adapter.down.bias)
        x_next = x_attn + mlp + 0.7 * (h @ adapter.up.weight.t() + adapter.up.bias)
        for t, task in enumerate(TASKS):
            h_t = kem.gamma[t] * h + kem.beta[t]
            z_t = x_next + 0.7 * ((h_t - h) @ adapter.up.weight.t())
            expect = model.host.backbone.norm0(z_t).view(2, *hw, -1).permute(0, 3, 1, 2)
            assert (out[task][0] - expect).abs().max().item() < 1e-10
        # the main stream (what the next stage consumes) is x_next, shared by all tasks
        assert (model.host.backbone.stages[0].blocks[-1](xin, hw) - x_next).abs().max() < 1e-10


def test_lite_ties_up_projection_to_down_projection():
    model = _model(dict(type='VMTAdapterLite', bottleneck=4)).double().eval()
    for a in model.peft.adapters:
        assert not hasattr(a, 'up')
        assert a.out_scale.abs().sum() == 0  # zero init: identity at init
    _perturb(model.peft)
    a = model.peft.adapters[0]
    h = torch.randn(5, 4, dtype=torch.float64)
    expect = a.out_scale * (h @ a.down.weight) + a.up_bias  # W_u = W_d^T
    assert torch.allclose(a.up_full(h), expect)


@pytest.mark.parametrize('peft_type', ['VMTAdapter', 'VMTAdapterLite'])
def test_tasks_differ_only_at_tapped_levels(peft_type):
    last = _model(dict(type=peft_type, bottleneck=4)).host.default_tap_blocks()[-1]
    model = _model(dict(type=peft_type, bottleneck=4, tap_blocks=[last])).eval()
    _perturb(model.peft)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    for i in range(3):  # untapped levels: one shared tensor object for every task
        assert all(out[t][i] is out[TASKS[0]][i] for t in TASKS)
    assert not torch.allclose(out['semseg'][3], out['saliency'][3])
    assert not torch.allclose(out['semseg'][3], out['human_parts'][3])


def test_kem_none_is_task_generic():
    model = _model(dict(type='VMTAdapter', bottleneck=4, kem='none')).eval()
    assert not model.peft.task_specific and len(model.peft.kems) == 0
    _perturb(model.peft)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert all(out[t] is out[TASKS[0]] for t in TASKS)


@pytest.mark.parametrize('peft_type', ['VMTAdapter', 'VMTAdapterLite'])
def test_main_stream_runs_once_whatever_the_number_of_tasks(peft_type):
    def attention_calls(num_tasks: int):
        model = _model(dict(type=peft_type), tasks=[f't{i}' for i in range(num_tasks)]).eval()
        calls = []
        for blk in model.host.backbone.stages[2].blocks:
            blk.attn.w_msa.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
        with torch.no_grad():
            out = model(torch.randn(2, 3, 64, 64))
        assert len(out) == num_tasks
        return calls

    one, four = attention_calls(1), attention_calls(4)
    assert one == four and len(one) == 2  # two blocks, one call each, same batch of windows


def test_gradients_reach_only_adapter_parameters():
    model = _model(dict(type='VMTAdapter', bottleneck=4)).train()
    _perturb(model.peft)
    out = model(torch.randn(2, 3, 64, 64))
    loss = sum((f * (k + 1)).square().mean() for k, t in enumerate(TASKS) for f in out[t])
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith('peft.'):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_train_switches_unfreeze_norms_rel_pos_patch_embed():
    model = _model(dict(type='VMTAdapter', bottleneck=4, train_norms=True, train_rel_pos=True,
                        train_patch_embed=True))
    bb = model.host.backbone
    for name, p in bb.named_parameters():
        expected = ('norm' in name or 'relative_position_bias_table' in name
                    or name.startswith('patch_embed.'))
        assert p.requires_grad == expected, name
    with pytest.raises(ValueError, match='no relative position bias tables'):
        _model(dict(type='VMTAdapter', train_rel_pos=True),
               backbone=dict(type='MMSegViT', **MM_VIT))


@pytest.mark.parametrize('peft', [
    dict(type='VMTAdapter', bottleneck=[2, 3, 4, 5]),
    dict(type='VMTAdapterLite', bottleneck=3, kem='lowrank', kem_rank=2),
    dict(type='VMTAdapter', bottleneck_ratio=0.25, kem='scale'),
])
def test_parameter_formula_matches_modules(peft):
    model = _model(peft)
    method = model.peft
    adapter_params = sum(p.numel() for p in method.parameters() if p.requires_grad)
    assert method.expected_num_params() == adapter_params
    report = model.param_groups_report()
    assert report['trainable'] == adapter_params == report['method_expected']
    assert report['backbone_trainable'] == 0
    assert sum(report['per_task_trainable'].values()) + report['shared_trainable'] == adapter_params


@pytest.mark.parametrize('peft_type,expected,percent', [
    ('VMTAdapter', 275_160, 0.9998),   # r = 6/12/24/48 (d_s / 16)
    ('VMTAdapterLite', 99_472, 0.3614),  # r = 4/8/16/32 (d_s / 24)
])
def test_swin_t_default_budget_for_five_tasks(peft_type, expected, percent):
    """Swin-T (mmseg, 27,520,698 parameters) with 5 tasks: ~1.0% and ~0.36%."""
    d, depth = (96, 192, 384, 768), (2, 2, 6, 2)
    ratio, lite = (1 / 16, False) if peft_type == 'VMTAdapter' else (1 / 24, True)
    r = [round(c * ratio) for c in d]
    per_block = [c * k + k + 2 * c if lite else 2 * c * k + k + c for c, k in zip(d, r)]
    formula = sum(n * b for n, b in zip(depth, per_block)) + 5 * sum(2 * k for k in r)
    assert formula == expected
    model = AdaptedBackbone(
        backbone=dict(type='MMSegSwin', embed_dims=96, depths=depth, num_heads=(3, 6, 12, 24),
                      window_size=7),
        peft=dict(type=peft_type), tasks=['semseg', 'human_parts', 'saliency', 'normals', 'depth'])
    report = model.param_groups_report()
    assert report['backbone_total'] == 27_520_698
    assert report['trainable'] == expected
    assert sum(p.numel() for p in model.peft.parameters() if p.requires_grad) == expected
    assert round(report['trainable_percent_of_backbone'], 4) == percent


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="kem='bogus'"):
        VMTAdapter(TASKS, kem='bogus')
    with pytest.raises(ValueError, match='not blocks whose output is a backbone output'):
        _model(dict(type='VMTAdapter', tap_blocks=[0]))
    with pytest.raises(ValueError, match=r'or -1 \.\. -4 from the end'):
        _model(dict(type='VMTAdapter', tap_blocks=[-5]))
    with pytest.raises(ValueError, match='has duplicates'):
        _model(dict(type='VMTAdapter', tap_blocks=[-1, 7]))  # -1 is block 7
    with pytest.raises(ValueError, match='has 3 entries, the backbone has 4 stage'):
        _model(dict(type='VMTAdapter', bottleneck=[4, 4, 4]))
    with pytest.raises(ValueError, match="act='tanh'"):
        VMTAdapterLite(TASKS, act='tanh')


def test_negative_tap_blocks_count_from_the_last_level():
    valid = _model(dict(type='VMTAdapter', bottleneck=4)).host.default_tap_blocks()
    model = _model(dict(type='VMTAdapter', bottleneck=4, tap_blocks=[-2, -1]))
    assert model.peft.taps == valid[-2:]
    mixed = _model(dict(type='VMTAdapter', bottleneck=4, tap_blocks=[valid[0], -1]))
    assert mixed.peft.taps == [valid[0], valid[-1]]


def test_deepcopy_keeps_hooks_on_the_copy():
    model = _model(dict(type='VMTAdapter', bottleneck=4)).eval()
    _perturb(model.peft)
    twin = copy.deepcopy(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), twin(x)
        twin.peft.kems[str(twin.host.levels[0].block_index)].beta.add_(1.0)
        c, a2 = twin(x), model(x)
    assert all(torch.equal(u, v) for t in TASKS for u, v in zip(a[t], b[t]))
    assert torch.equal(a['semseg'][0], a2['semseg'][0])  # the original is unaffected
    assert not torch.equal(a['semseg'][0], c['semseg'][0])
