"""PEFT-only export (tools/export_peft.py, mtdense.engine.peft_export) and load_peft.

The tool's ``main(argv)`` runs in-process (same code path as the command line, without
paying another interpreter start-up for mmseg/timm imports).
"""
import contextlib
import copy
import io
import json
import os

import pytest
import torch

from helpers.checkpoints import MarkerPayload
from helpers.toolrun import TINY_CONFIG
from mtdense.cli import export_peft as tool
from mtdense.engine import UnsafeCheckpointError, safe_load
from mtdense.engine.peft_export import (BackboneMismatchError, PeftExportError, export_peft,
                                        frozen_fingerprint, load_peft, read_peft,
                                        split_trained_frozen)


@pytest.fixture(scope='module')
def model_cfg():
    from mmengine.config import Config
    from mtdense.utils import register_all_modules
    register_all_modules()
    return Config.fromfile(TINY_CONFIG).model.to_dict()


def _build(model_cfg, seed: int, backbone_ckpt=None, **peft):
    from mtdense.registry import MODELS
    cfg = copy.deepcopy(model_cfg)
    cfg['backbone']['checkpoint'] = None if backbone_ckpt is None else str(backbone_ckpt)
    cfg['backbone']['peft'].update(peft)
    torch.manual_seed(seed)  # fresh adapters/heads differ from the trained ones
    return MODELS.build(cfg).eval()


@pytest.fixture(scope='module')
def trained(tiny_run, model_cfg, tmp_path_factory):
    """The tiny run's final model, its PEFT export (through the CLI) and its frozen
    backbone saved as an mmseg-format pretrained checkpoint."""
    tmp = tmp_path_factory.mktemp('peft')
    model = _build(model_cfg, seed=0)
    model.load_state_dict(safe_load(tiny_run.ckpt)['state_dict'], strict=True)
    backbone_ckpt = tmp / 'pretrained_backbone.pth'
    torch.save(model.backbone.host.backbone.state_dict(), backbone_ckpt)
    out = tmp / 'peft.safetensors'
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = tool.main([TINY_CONFIG, tiny_run.ckpt, '--out', str(out)])
    assert rc == 0
    return dict(model=model, export=out, backbone_ckpt=backbone_ckpt, stdout=stdout.getvalue(),
                full_ckpt=tiny_run.ckpt)


def _outputs(model):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        return model(x, mode='tensor')


def test_export_holds_only_trained_state_and_restores_the_model(trained, model_cfg):
    ref, path = trained['model'], trained['export']
    tensors, meta = read_peft(path)
    trained_state, frozen = split_trained_frozen(ref)
    assert set(tensors) == set(trained_state)
    assert not set(tensors) & set(frozen)
    # adapters, KEMs and heads (with their BatchNorm statistics) are in, the backbone is not
    assert any(k.startswith('backbone.peft.') for k in tensors)
    assert any(k.startswith('heads.') and k.endswith('running_var') for k in tensors)
    assert not any(k.startswith('backbone.host.backbone.') and k.endswith('weight')
                   for k in tensors)
    total = sum(v.numel() for v in ref.state_dict().values())
    exported = sum(v.numel() for v in tensors.values())
    assert exported < 0.1 * total
    assert os.path.getsize(path) < 0.1 * os.path.getsize(trained['full_ckpt'])
    # backbone identity in the metadata
    bb = json.loads(meta['backbone_cfg'])
    assert bb['backbone']['type'] == 'MMSegSwin' and bb['backbone']['embed_dims'] == 16
    assert bb['peft']['type'] == 'VMTAdapter' and 'checkpoint' not in bb
    assert meta['frozen_sha256'] == frozen_fingerprint(ref)['sha256']
    assert json.loads(meta['tasks']) == list(ref.tasks)
    assert 'exported' in trained['stdout'] and meta['frozen_sha256'] in trained['stdout']

    # a fresh model: pretrained backbone from the config's checkpoint, new adapters/heads
    fresh = _build(model_cfg, seed=123, backbone_ckpt=trained['backbone_ckpt'])
    before = _outputs(fresh)
    expected = _outputs(ref)
    assert not torch.allclose(before['semseg'], expected['semseg'])
    report = load_peft(fresh, path)
    assert report['missing'] == [] and report['unexpected'] == []
    after = _outputs(fresh)
    for task in ref.tasks:
        assert torch.equal(after[task], expected[task]), task
    full_ref, full_new = ref.state_dict(), fresh.state_dict()
    assert all(torch.equal(full_ref[k], full_new[k]) for k in full_ref)


def test_backbone_mismatch_is_detected(trained, model_cfg):
    path = trained['export']
    # same architecture, other weights (no pretrained checkpoint given)
    other = _build(model_cfg, seed=5)
    state_before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(BackboneMismatchError, match='same architecture but different weights'):
        load_peft(other, path)
    assert all(torch.equal(state_before[k], v) for k, v in other.state_dict().items()), \
        'a failed load_peft modified the model'
    # another architecture
    wide = copy.deepcopy(model_cfg)
    wide['backbone']['backbone']['embed_dims'] = 24
    with pytest.raises(BackboneMismatchError, match='different architecture'):
        load_peft(_build(wide, seed=0), path)
    # other freezing (norms trained here, frozen in the export)
    with pytest.raises(BackboneMismatchError, match='not frozen parameters of this model'):
        load_peft(_build(model_cfg, 0, trained['backbone_ckpt'], train_norms=True), path)


def test_method_mismatch_is_detected(trained, model_cfg):
    path, ckpt = trained['export'], trained['backbone_ckpt']
    with pytest.raises(PeftExportError, match='shape mismatch'):
        load_peft(_build(model_cfg, 0, ckpt, bottleneck=8), path)
    scale_only = _build(model_cfg, 0, ckpt, kem='scale')  # no per-task shift (beta)
    with pytest.raises(PeftExportError, match='unexpected'):
        load_peft(scale_only, path)
    report = load_peft(scale_only, path, strict=False)
    assert report['unexpected'] and not report['missing'] and report['loaded']


def test_pth_format_is_weights_only_and_round_trips(trained, model_cfg, tmp_path):
    path = tmp_path / 'peft.pth'
    summary = export_peft(trained['model'], path, backbone_cfg=model_cfg['backbone'])
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    fresh = _build(model_cfg, seed=9, backbone_ckpt=trained['backbone_ckpt'])
    report = load_peft(fresh, path)
    assert len(report['loaded']) == summary['num_tensors']
    assert torch.equal(_outputs(fresh)['depth'], _outputs(trained['model'])['depth'])


def test_bad_inputs_raise_clear_errors(trained, tmp_path):
    with pytest.raises(PeftExportError, match='full checkpoint'):
        read_peft(trained['full_ckpt'])
    with pytest.raises(FileNotFoundError, match='nope.safetensors'):
        read_peft(tmp_path / 'nope.safetensors')
    with pytest.raises(PeftExportError, match='ending in'):
        export_peft(trained['model'], tmp_path / 'peft.bin')
    from safetensors.torch import save_file
    save_file({'w': torch.zeros(1)}, str(tmp_path / 'plain.safetensors'))
    with pytest.raises(PeftExportError, match='format'):
        read_peft(tmp_path / 'plain.safetensors')


def test_export_tool_refuses_malicious_checkpoint(tmp_path):
    marker = tmp_path / 'PWNED'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': MarkerPayload(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        tool.main([TINY_CONFIG, str(evil), '--out', str(tmp_path / 'x.safetensors')])
    assert not marker.exists()
    assert not (tmp_path / 'x.safetensors').exists()
