"""Backbone weights in official / timm / mmseg key formats load into the wrapped backbones.

No pretrained weights exist offline, so the tests build randomly initialised
models, write their state dicts in each key format (the official layout is
made here by renaming timm keys by hand: official Swin merges patches at the
*end* of a stage, carries relative_position_index / attn_mask buffers and a
classifier ``head``), and check round trips and numerical equivalence of the
mmseg and timm implementations after conversion.
"""
import re

import pytest
import torch
import torch.nn.functional as F

import mtdense  # noqa: F401
from mtdense.models.backbones import (AdaptedBackbone, CheckpointMismatchError, MMSegSwin,
                                      MMSegViT, TimmSwin, TimmViT, detect_format,
                                      load_backbone_checkpoint)

ARCH_TIMM = dict(img_size=128, embed_dim=16, depths=(2, 2, 2, 1), num_heads=(1, 2, 2, 4),
                 window_size=4, drop_path_rate=0.)
ARCH_MMSEG = dict(embed_dims=16, depths=(2, 2, 2, 1), num_heads=(1, 2, 2, 4), window_size=4,
                  drop_path_rate=0.)


def official_from_timm(model: torch.nn.Module) -> dict:
    """Write a timm Swin model's weights in the Microsoft Swin-Transformer layout."""
    sd = {}
    for k, v in model.state_dict().items():
        m = re.match(r'layers\.(\d+)\.downsample\.(.*)', k)
        if m:
            k = f'layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
        sd[k] = v.clone()
    # official checkpoints persist these buffers and carry the final norm + classifier
    for name, mod in model.named_modules():
        if hasattr(mod, 'relative_position_index') and name.endswith('attn'):
            sd[f'{name}.relative_position_index'] = mod.relative_position_index.clone()
        if getattr(mod, 'attn_mask', None) is not None:
            sd[f'{name}.attn_mask'] = mod.attn_mask.clone()
    c = model.num_features
    sd['norm.weight'], sd['norm.bias'] = torch.randn(c), torch.randn(c)
    sd['head.weight'], sd['head.bias'] = torch.randn(10, c), torch.randn(10)
    return {'model': sd}


@pytest.fixture(scope='module')
def timm_source():
    torch.manual_seed(0)
    host = TimmSwin(**ARCH_TIMM)
    return host


def _assert_same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_official_format_loads_into_timm_and_mmseg(timm_source, tmp_path):
    path = tmp_path / 'swin_official.pth'
    torch.save(official_from_timm(timm_source.backbone), path)
    sd = torch.load(path, weights_only=True)['model']
    assert detect_format(sd) == ('swin', 'official')

    timm_host = TimmSwin(**ARCH_TIMM)
    report = load_backbone_checkpoint(timm_host, str(path))
    assert report['format'] == 'official'
    assert 'head.fc.weight' in report['dropped'] and 'norm.weight' in report['dropped']
    _assert_same_weights(timm_host.backbone.state_dict(), timm_source.backbone.state_dict())

    mmseg_host = MMSegSwin(**ARCH_MMSEG)
    report = load_backbone_checkpoint(mmseg_host, str(path))
    # mmseg's output norms do not exist in the official layout (mmseg keeps them at init too)
    assert sorted(report['kept_at_init']) == sorted(
        f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    # same function: mmseg level i == LayerNorm(timm stage i output) with the unit-init norm{i}
    x = torch.randn(2, 3, 128, 128, dtype=torch.float64)
    timm_host.double().eval()
    mmseg_host.double().eval()
    with torch.no_grad():
        for t_out, m_out in zip(timm_host.forward_main(x), mmseg_host.forward_main(x)):
            expect = F.layer_norm(t_out.permute(0, 2, 3, 1), (t_out.shape[1],)).permute(0, 3, 1, 2)
            assert m_out.shape == expect.shape
            assert (m_out - expect).abs().max().item() < 1e-9


def test_mmseg_format_round_trip(timm_source, tmp_path):
    """timm -> (official) -> mmseg -> segmentor checkpoint -> timm reproduces every tensor."""
    mmseg_host = MMSegSwin(**ARCH_MMSEG)
    load_backbone_checkpoint(mmseg_host, dict(timm_source.backbone.state_dict()))
    weights = {f'backbone.{k}': v for k, v in mmseg_host.backbone.state_dict().items()}
    weights['decode_head.conv_seg.weight'] = torch.zeros(3, 8, 1, 1)
    seg_ckpt = {'meta': {'note': 'segmentor'}, 'state_dict': weights}
    path = tmp_path / 'seg.pth'
    torch.save(seg_ckpt, path)
    assert detect_format(mmseg_host.backbone.state_dict()) == ('swin', 'mmseg')

    timm_host = TimmSwin(**ARCH_TIMM)
    report = load_backbone_checkpoint(timm_host, str(path))
    assert report['format'] == 'mmseg'
    assert report['not_backbone'] == ['decode_head.conv_seg.weight']
    _assert_same_weights(timm_host.backbone.state_dict(), timm_source.backbone.state_dict())

    mmseg_again = MMSegSwin(**ARCH_MMSEG)
    report = load_backbone_checkpoint(mmseg_again, str(path))
    assert report['kept_at_init'] == [] and report['dropped'] == []
    _assert_same_weights(mmseg_again.backbone.state_dict(), mmseg_host.backbone.state_dict())


def test_timm_format_safetensors_through_adapted_backbone(timm_source, tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / 'swin_timm.safetensors'
    save_file({k: v.contiguous() for k, v in timm_source.backbone.state_dict().items()}, str(path))
    model = AdaptedBackbone(backbone=dict(type='TimmSwin', **ARCH_TIMM),
                            peft=dict(type='VMTAdapter'), tasks=['semseg', 'depth'],
                            checkpoint=str(path))
    assert model.checkpoint_report['format'] == 'timm'
    _assert_same_weights(model.host.backbone.state_dict(), timm_source.backbone.state_dict())
    # the weights are loaded before the method attaches: the adapted model is the loaded backbone
    model.eval()
    timm_source.eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        out = model(x)
        ref = timm_source.forward_main(x)
    for task in ('semseg', 'depth'):
        for a, b in zip(out[task], ref):
            assert (a - b).abs().max().item() <= 1e-6

    mmseg_model = AdaptedBackbone(backbone=dict(type='MMSegSwin', **ARCH_MMSEG),
                                  peft=dict(type='DecoderOnly'), tasks=['semseg'],
                                  checkpoint=str(path), checkpoint_format='timm')
    assert mmseg_model.checkpoint_report['converted_to'] == 'mmseg'


def test_mismatch_lists_missing_and_unexpected_keys(timm_source, tmp_path):
    sd = dict(timm_source.backbone.state_dict())
    sd.pop('layers.1.blocks.0.attn.qkv.weight')
    sd['layers.1.blocks.0.attn.extra_scale'] = torch.ones(1)
    path = tmp_path / 'broken.pth'
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_backbone_checkpoint(TimmSwin(**ARCH_TIMM), str(path))
    msg = str(err.value)
    assert 'missing keys (1)' in msg and 'layers.1.blocks.0.attn.qkv.weight' in msg
    assert 'unexpected keys (1)' in msg and 'layers.1.blocks.0.attn.extra_scale' in msg

    wider = TimmSwin(**dict(ARCH_TIMM, embed_dim=24))
    with pytest.raises(CheckpointMismatchError, match='shape mismatches'):
        load_backbone_checkpoint(wider, dict(timm_source.backbone.state_dict()))
    with pytest.raises(CheckpointMismatchError, match='holds swin weights'):
        load_backbone_checkpoint(TimmViT(img_size=32, embed_dim=16, depth=4, num_heads=2),
                                 dict(timm_source.backbone.state_dict()))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_backbone_checkpoint(TimmSwin(**ARCH_TIMM), str(tmp_path / 'nope.pth'))


def test_non_tensor_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save({'a': torch.zeros(1), 'b': 3}, path)
    with pytest.raises(ValueError, match='not tensors'):
        load_backbone_checkpoint(TimmSwin(**ARCH_TIMM), str(path))


def test_vit_timm_weights_load_into_mmseg_vit_same_function(tmp_path):
    torch.manual_seed(1)
    timm_host = TimmViT(img_size=32, embed_dim=32, depth=4, num_heads=2, out_indices=[1, 3])
    path = tmp_path / 'vit_timm.pth'
    torch.save({'state_dict': timm_host.backbone.state_dict()}, path)
    mmseg_host = MMSegViT(img_size=32, patch_size=16, embed_dims=32, num_layers=4, num_heads=2,
                          out_indices=[1, 3], patch_bias=True, norm_cfg=dict(type='LN', eps=1e-6))
    report = load_backbone_checkpoint(mmseg_host, str(path))
    assert report['format'] == 'timm' and report['converted_to'] == 'mmseg'
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    timm_host.double().eval()
    mmseg_host.double().eval()
    with torch.no_grad():
        for a, b in zip(timm_host.forward_main(x), mmseg_host.forward_main(x)):
            assert a.shape == b.shape
            assert (a - b).abs().max().item() < 1e-9
    # and back: mmseg keys into timm
    back = TimmViT(img_size=32, embed_dim=32, depth=4, num_heads=2, out_indices=[1, 3])
    mmseg_weights = {k: v.float() for k, v in mmseg_host.backbone.state_dict().items()}
    load_backbone_checkpoint(back, mmseg_weights)
    _assert_same_weights({k: v.double() for k, v in back.backbone.state_dict().items()},
                         timm_host.backbone.state_dict())


def test_position_tables_are_resized_and_reported():
    torch.manual_seed(2)
    vit32 = TimmViT(img_size=32, embed_dim=16, depth=2, num_heads=2, out_indices=[0, 1])
    vit64 = TimmViT(img_size=64, embed_dim=16, depth=2, num_heads=2, out_indices=[0, 1])
    report = load_backbone_checkpoint(vit64, dict(vit32.backbone.state_dict()))
    assert report['resized'] == ['pos_embed: resampled (1, 5, 16) -> (1, 17, 16)']
    # the class-token slot is copied, the 2x2 grid interpolated to 4x4
    assert torch.equal(vit64.backbone.pos_embed[:, 0], vit32.backbone.pos_embed[:, 0])

    win4 = MMSegSwin(**ARCH_MMSEG)
    win5 = MMSegSwin(**dict(ARCH_MMSEG, window_size=5))
    report = load_backbone_checkpoint(win5, dict(win4.backbone.state_dict()))
    tables = [k for k in win4.backbone.state_dict() if k.endswith('relative_position_bias_table')]
    assert len(report['resized']) == len(tables) > 0
    assert all('(49, ' in r and '-> (81, ' in r for r in report['resized'])
    assert all(k.endswith('relative_position_index') for k in report['computed'])
