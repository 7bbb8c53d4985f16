"""Backbone hosts (mmseg / timm, Swin / ViT) and the AdaptedBackbone wrapper."""
import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import torch
from mmseg.models.backbones import SwinTransformer

from mtdense.models.backbones import AdaptedBackbone, MMSegSwin, MMSegViT, TimmSwin, TimmViT
from mtdense.registry import MODELS

SWIN_ARCH = dict(depths=(2, 1, 2, 1), num_heads=(1, 1, 2, 2), window_size=4)
HOSTS = {
    'mmseg_swin': (MMSegSwin, dict(embed_dims=16, **SWIN_ARCH)),
    'timm_swin': (TimmSwin, dict(img_size=64, embed_dim=16, **SWIN_ARCH)),
    'timm_swin_norm': (TimmSwin, dict(img_size=64, embed_dim=16, norm_last=True, **SWIN_ARCH)),
    'mmseg_vit': (MMSegViT, dict(img_size=64, patch_size=16, embed_dims=16, num_layers=8,
                                 num_heads=2, final_norm=True)),
    'timm_vit': (TimmViT, dict(img_size=64, embed_dim=16, depth=8, num_heads=2, norm=True)),
}


def _host(kind):
    torch.manual_seed(0)
    cls, kw = HOSTS[kind]
    host = cls(**kw)
    host.init_backbone_weights()
    return host.eval()


def _norm2(block):
    return block.norm2  # mmseg ViT exposes ln2 through the norm2 property


@pytest.mark.parametrize('kind', list(HOSTS))
def test_host_description_matches_the_library_forward(kind):
    """Tapped block outputs + output transform == the library's own outputs; MLP input == LN2(x)."""
    host = _host(kind)
    tapped, mlp_in, norm_out = {}, {}, {}
    for b in host.blocks:
        b.module.register_forward_hook(lambda m, a, o, i=b.index: tapped.__setitem__(i, o))
        b.mlp.register_forward_hook(lambda m, a, o, i=b.index: mlp_in.__setitem__(i, a[0]))
        norm2 = _norm2(b.module)
        norm2.register_forward_hook(lambda m, a, o, i=b.index: norm_out.__setitem__(i, o))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outs = host.forward_main(x)
        assert len(outs) == len(host.levels)
        for lvl, ref in enumerate(host.levels):
            z = tapped[ref.block_index]
            rebuilt = host.output_transform(lvl, z, tuple(outs[lvl].shape[-2:]))
            assert torch.equal(rebuilt, outs[lvl]), (kind, lvl)
            assert outs[lvl].shape[1] == ref.channels
            assert outs[lvl].shape[-1] == 64 // ref.stride
    for b in host.blocks:
        assert torch.equal(mlp_in[b.index].flatten(), norm_out[b.index].flatten())
    # every block in forward order, with stages
    assert [b.index for b in host.blocks] == list(range(len(host.blocks)))
    assert len(tapped) == len(host.blocks)


def test_swin_hosts_describe_stages_and_levels():
    mm, tm = _host('mmseg_swin'), _host('timm_swin')
    for host in (mm, tm):
        assert [b.stage for b in host.blocks] == [0, 0, 1, 2, 2, 3]
        assert host.default_tap_blocks() == [1, 2, 4, 5]  # last block of every stage
        assert host.out_channels == [16, 32, 64, 128]
        assert [lv.stride for lv in host.levels] == [4, 8, 16, 32]
        assert set(host.blocks[0].linears) == {'qkv', 'proj', 'fc1', 'fc2'}
    assert mm.blocks[0].linears['fc1'][0] is mm.backbone.stages[0].blocks[0].ffn.layers[0][0]
    assert tm.blocks[0].linears['fc2'][0] is tm.backbone.layers[0].blocks[0].mlp.fc2


@pytest.mark.parametrize('kind,size', [('mmseg_swin', (72, 56)), ('timm_swin', (96, 40)),
                                       ('mmseg_vit', (48, 80)), ('timm_vit', (48, 80))])
def test_any_supported_input_size(kind, size):
    cls, kw = HOSTS[kind]
    model = AdaptedBackbone(
        backbone=dict(type=cls.__name__, **kw),
        peft=dict(type='VMTAdapter'),
        tasks=['semseg', 'depth']).eval()
    h, w = size
    with torch.no_grad():
        out = model(torch.randn(1, 3, h, w))
    assert set(out) == {'semseg', 'depth'}
    for task in out:
        assert [f.shape[1] for f in out[task]] == model.out_channels
        for f, stride in zip(out[task][:3], (4, 8, 16)):
            # Swin pads (ceil); the ViT neck resizes the stride-16 grid by 4, 2, 1
            assert f.shape[-2:] == (-(-h // stride), -(-w // stride))


def test_vit_neck_builds_a_four_level_pyramid():
    model = AdaptedBackbone(
        backbone=dict(type='TimmViT', **HOSTS['timm_vit'][1]),
        peft=dict(type='VMTAdapterLite'),
        tasks=['semseg', 'normals'])
    assert type(model.neck).__name__ == 'MultiLevelNeck'
    assert model.out_channels == [16] * 4 and model.neck.scales == [4.0, 2.0, 1.0, 0.5]
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in out['semseg']] == [(2, 16, 16, 16), (2, 16, 8, 8),
                                                       (2, 16, 4, 4), (2, 16, 2, 2)]
    report = model.param_groups_report()
    assert report['neck_trainable'] == report['neck_total'] > 0
    assert report['trainable'] == report['method_trainable'] + report['neck_trainable']


def test_registry_build_and_library_state_dict_keys():
    torch.manual_seed(0)
    kw = HOSTS['mmseg_swin'][1]
    model = MODELS.build(
        dict(
            type='AdaptedBackbone',
            backbone=dict(type='MMSegSwin', **kw),
            peft=dict(type='MTLoRA', rank=2, task_rank=2),
            tasks=['a', 'b']))
    assert isinstance(model, AdaptedBackbone) and model.tasks == ['a', 'b']
    # hooks, not module surgery: the wrapped backbone keeps mmseg's own keys
    assert list(model.host.backbone.state_dict()) == list(SwinTransformer(**kw).state_dict())


def test_init_weights_keeps_loaded_backbone_weights(tmp_path):
    torch.manual_seed(0)
    kw = HOSTS['mmseg_swin'][1]
    ref = SwinTransformer(**kw)
    ref.init_weights()
    path = tmp_path / 'w.pth'
    torch.save(ref.state_dict(), path)
    model = AdaptedBackbone(
        backbone=dict(type='MMSegSwin', **kw),
        peft=dict(type='VMTAdapter'),
        tasks=['semseg'],
        checkpoint=str(path))
    model.init_weights()  # what mmengine's runner calls; must not re-initialise the backbone
    for k, v in ref.state_dict().items():
        assert torch.equal(model.host.backbone.state_dict()[k], v), k
    assert all(a.up.weight.abs().sum() == 0 for a in model.peft.adapters)


def test_report_fields():
    model = AdaptedBackbone(
        backbone=dict(type='TimmSwin', **HOSTS['timm_swin'][1]),
        peft=dict(type='BitFit', train_norms=True),
        tasks=['a', 'b', 'c'])
    r = model.param_groups_report()
    for key in ('total', 'trainable', 'backbone_total', 'backbone_trainable', 'method_total',
                'neck_total', 'per_task_trainable', 'shared_trainable',
                'trainable_percent_of_backbone'):
        assert key in r
    assert r['per_task_trainable'] == {'a': 0, 'b': 0, 'c': 0}
    biases_and_norms = {n for n, _ in model.host.backbone.named_parameters() if n.endswith('bias')}
    biases_and_norms |= set(model.host.norm_param_names())
    params = dict(model.host.backbone.named_parameters())
    expected = sum(params[n].numel() for n in biases_and_norms)
    assert r['trainable'] == r['shared_trainable'] == expected


@pytest.mark.parametrize('backbone,error,match', [
    (dict(type='MMSegSwin', out_indices=(1, 2, 3)), ValueError, 'out_indices must be'),
    (dict(type='MMSegSwin', with_cp=True), ValueError, 'with_cp=True is not supported'),
    (dict(type='MMSegSwin', frozen_stages=1), ValueError, 'frozen_stages is not supported'),
    (dict(type='MMSegViT', frozen_exclude=['pos']), ValueError, 'frozen_exclude'),
    (dict(type='MMSegSwin', pretrained='x.pth'), ValueError, 'AdaptedBackbone\\(checkpoint'),
    (dict(type='TimmSwin', pretrained=True), ValueError, 'never downloads'),
    (dict(type='TimmSwin', num_classes=10), ValueError, 'managed by the host'),
    (dict(type='MMSegViT', output_cls_token=True), ValueError, 'output_cls_token'),
    (dict(type='ResNetV1c', depth=18), TypeError, 'expected a BackboneHost'),
])
def test_bad_backbone_configs(backbone, error, match):
    with pytest.raises(error, match=match):
        AdaptedBackbone(backbone=backbone, peft=dict(type='DecoderOnly'), tasks=['semseg'])


def test_bad_wrapper_arguments():
    bb = dict(type='MMSegSwin', **HOSTS['mmseg_swin'][1])
    with pytest.raises(ValueError, match='unique'):
        AdaptedBackbone(backbone=bb, peft=dict(type='VMTAdapter'), tasks=['a', 'a'])
    with pytest.raises(ValueError, match='differs from tasks'):
        AdaptedBackbone(backbone=bb, peft=dict(type='VMTAdapter', tasks=['b']), tasks=['a'])
    with pytest.raises(TypeError, match='config dict'):
        AdaptedBackbone(backbone='swin', peft=dict(type='VMTAdapter'), tasks=['a'])
    with pytest.raises(ValueError, match='gives 2 levels'):
        AdaptedBackbone(
            backbone=dict(type='TimmViT', **HOSTS['timm_vit'][1]),
            peft=dict(type='DecoderOnly'),
            tasks=['a'],
            neck=dict(type='MultiLevelNeck', in_channels=[16] * 4, out_channels=8, scales=[2, 1]))


# ------------------------------------------------------- stage-wise forward (MTLoRA)
STAGED = ['mmseg_swin', 'timm_swin']


@pytest.mark.parametrize('kind', STAGED)
@pytest.mark.parametrize('size', [(64, 64), (72, 56)])
def test_stage_forward_is_the_library_forward(kind, size):
    """embed / run_block / merge reproduce the library's own forward, stage by stage,
    including window padding and odd-size merges."""
    host = _host(kind)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = host.forward_main(x)
        tokens, hw = host.embed(x)
        for s in range(host.num_stages):
            for b in [b for b in host.blocks if b.stage == s]:
                tokens = host.run_block(b, tokens, hw)
            assert torch.equal(host.output_transform(s, tokens, hw), outs[s]), s
            nxt = host.merge(s, tokens, hw)
            if s == host.num_stages - 1:
                assert nxt is None
            else:
                tokens, hw = nxt
                lv = host.merged_levels()[s]
                assert host.tokens_to_nchw(tokens, hw).shape[1:] == \
                    (lv.channels, -(-size[0] // lv.stride), -(-size[1] // lv.stride))
    assert [lv.stride for lv in host.merged_levels()] == [8, 16, 32, 32]
    assert [lv.channels for lv in host.merged_levels()] == [32, 64, 128, 128]


@pytest.mark.parametrize('kind', STAGED)
def test_attn_windows_to_tokens_is_the_blocks_own(kind):
    """The host's windows -> tokens map of proj's output equals what the block feeds its
    attention drop path (shifted and unshifted blocks, padded windows)."""
    host = _host(kind)
    size = (72, 56)
    got, hws = {}, {}
    for b in host.blocks:
        b.parts.proj_drop.register_forward_hook(
            lambda m, a, o, i=b.index: got.setdefault(i, {}).__setitem__('win', o))
        b.parts.attn_drop_path.register_forward_hook(
            lambda m, a, o, i=b.index: got[i].__setitem__('tokens', a[0]))
        b.module.register_forward_pre_hook(
            lambda m, a, i=b.index: hws.__setitem__(i, tuple(a[1]) if len(a) > 1
                                                      else tuple(a[0].shape[1:3])))
    with torch.no_grad():
        host.forward_main(torch.randn(2, 3, *size))
    shifted = 0
    for b in host.blocks:
        rebuilt = host.attn_windows_to_tokens(b, got[b.index]['win'], hws[b.index])
        assert torch.equal(rebuilt, got[b.index]['tokens']), b.name
        shifted += int(b.index % 2 == 1)
    assert shifted > 0


@pytest.mark.parametrize('kind', STAGED)
def test_block_parts_are_the_blocks_modules(kind):
    host = _host(kind)
    b = host.blocks[1]
    if kind == 'mmseg_swin':
        ffn = b.module.ffn
        assert b.parts.mlp_hidden == (ffn.layers[0][1], ffn.layers[0][2])
        assert b.parts.mlp_out == (ffn.layers[2], ffn.gamma2)
        assert b.parts.attn_drop_path is b.module.attn.drop
    else:
        mlp = b.module.mlp
        assert b.parts.mlp_hidden == (mlp.act, mlp.drop1, mlp.norm)
        assert b.parts.attn_drop_path is b.module.drop_path1
    assert b.parts.norm2 is b.module.norm2
    names = host.merge_param_names()
    assert len(names) == 3 and all(n.endswith('reduction.weight') for n in names)
    params = dict(host.backbone.named_parameters())
    assert all(n in params for n in names + host.output_norm_param_names())


@pytest.mark.parametrize('kind', ['mmseg_vit', 'timm_vit'])
def test_vit_hosts_have_no_stage_forward(kind):
    host = _host(kind)
    assert not host.has_stage_forward
    with pytest.raises(NotImplementedError, match='no stage-wise forward'):
        host.merged_levels()


def test_pyramid_stride_check():
    from mtdense.models.backbones.adapted_backbone import _check_strides
    for ok in ([4, 8, 16, 32], [8, 16, 32, 32], [2, 4, 8, 16]):
        _check_strides(ok, 'x')
    for bad in ([4, 16, 32, 64], [8, 4, 16, 32], [4, 8, 12, 24], [16, 16, 16, 0]):
        with pytest.raises(ValueError, match='strides'):
            _check_strides(bad, 'x')
