"""Task heads: output shapes, mmseg heads through the adapter on mmcv-lite."""
import copy

import pytest
import torch

import mtdense.models  # noqa: F401  (registers the heads)
from mtdense.registry import MODELS

IN_CHANNELS = [8, 16, 32, 64]


def pyramid(batch=2, size=64, channels=IN_CHANNELS):
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize('out_channels', [1, 3, 7])
def test_light_head_shape_and_grad(out_channels):
    head = MODELS.build(dict(type='LightMultiScaleHead', in_channels=IN_CHANNELS,
                             out_channels=out_channels, channels=16))
    feats = pyramid()
    out = head(feats)
    assert out.shape == (2, out_channels, 16, 16)  # stride 4 of a 64 px input
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_light_head_non_square_input():
    head = MODELS.build(dict(type='LightMultiScaleHead', in_channels=IN_CHANNELS, out_channels=2))
    feats = [torch.randn(1, c, 96 // s, 64 // s) for c, s in zip(IN_CHANNELS, (4, 8, 16, 32))]
    head.eval()
    assert head(feats).shape == (1, 2, 24, 16)


def test_light_head_checks_pyramid():
    head = MODELS.build(dict(type='LightMultiScaleHead', in_channels=IN_CHANNELS, out_channels=2))
    with pytest.raises(ValueError, match='expected 4 feature levels'):
        head(pyramid()[:3])
    with pytest.raises(ValueError, match=r'level 1 should be \(B, 16, H, W\)'):
        head(pyramid(channels=[8, 8, 32, 64]))


@pytest.mark.parametrize('out_channels', [1, 3, 21])
def test_uperhead_adapter_mmcv_lite(out_channels):
    head = MODELS.build(dict(
        type='MMSegHeadAdapter', in_channels=IN_CHANNELS, out_channels=out_channels,
        head=dict(type='UPerHead', channels=16, pool_scales=(1, 2), dropout_ratio=0.1,
                  norm_cfg=dict(type='BN'), align_corners=False)))
    assert type(head.head).__name__ == 'UPerHead'
    assert head.head.conv_seg.out_channels == out_channels
    head.init_weights()
    out = head(pyramid())
    assert out.shape == (2, out_channels, 16, 16)
    out.mean().backward()
    assert head.head.conv_seg.weight.grad is not None


def test_fcnhead_adapter_single_level():
    head = MODELS.build(dict(
        type='MMSegHeadAdapter', in_channels=IN_CHANNELS, out_channels=3,
        head=dict(type='FCNHead', channels=8, in_index=3, num_convs=1, concat_input=False)))
    assert head(pyramid()).shape == (2, 3, 2, 2)  # FCNHead decodes the stride-32 level


def test_adapter_rejects_conflicting_channels():
    with pytest.raises(ValueError, match='num_classes=5 conflicts'):
        MODELS.build(dict(type='MMSegHeadAdapter', in_channels=IN_CHANNELS, out_channels=3,
                          head=dict(type='UPerHead', channels=8, num_classes=5)))


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), None, dict(type='GN', num_groups=4)])
def test_light_head_reassociated_forward_equals_plain_layout(norm_cfg):
    """The head computes fuse(cat(up(reduce))) (``forward_plain``: reducers, upsampling,
    concat, ConvModule, dropout, predictor) as sum(up(fuse_l o reduce_l)): same function,
    same parameters, BN folded in eval; gradients and BN statistics agree too."""
    torch.manual_seed(0)
    head = MODELS.build(dict(type='LightMultiScaleHead', in_channels=IN_CHANNELS,
                             out_channels=5, channels=16, norm_cfg=norm_cfg)).double()
    ref = copy.deepcopy(head)
    feats = [f.double() for f in pyramid(batch=3, size=96)]
    for mode in ('train', 'eval'):
        head.train(mode == 'train')
        ref.train(mode == 'train')
        head.zero_grad()
        ref.zero_grad()
        out, expect = head(feats), ref.forward_plain(feats)
        torch.testing.assert_close(out, expect, rtol=1e-10, atol=1e-10)
        (out * expect.detach().cos()).sum().backward()
        (expect * expect.detach().cos()).sum().backward()
        for (name, p), q in zip(head.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-10, msg=name)
        for (name, b), c in zip(head.named_buffers(), ref.buffers()):
            torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10, msg=name)
