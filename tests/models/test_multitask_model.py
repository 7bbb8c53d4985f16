"""MultiTaskDenseModel and MultiTaskDataPreprocessor with a tiny registered test backbone."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.optim import OptimWrapper

import mtdense.models  # noqa: F401
from mtdense.models import MultiTaskDenseModel
from mtdense.registry import MODELS
from mtdense.structures import MultiTaskDataSample

ALL_TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
NUM_CLASSES = 5


@MODELS.register_module(force=True)
class _TestPyramidBackbone(BaseModule):
    """Conv pyramid (strides 4..32) that gives every task the same feature list."""

    def __init__(self, tasks, channels=(8, 16, 32, 64)):
        super().__init__()
        self.tasks = list(tasks)
        self.out_channels = list(channels)
        layers, prev = [], 3
        for i, c in enumerate(channels):
            stride = 4 if i == 0 else 2
            layers.append(nn.Sequential(nn.Conv2d(prev, c, 3, stride=stride, padding=1), nn.ReLU()))
            prev = c
        self.stages = nn.ModuleList(layers)

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return {t: feats for t in self.tasks}


def make_model(tasks=ALL_TASKS, **kwargs):
    cfg = dict(type='MultiTaskDenseModel', backbone=dict(type='_TestPyramidBackbone'),
               tasks=list(tasks), heads=dict(type='LightMultiScaleHead', channels=16),
               num_classes=NUM_CLASSES)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def make_sample(h, w, tasks=ALL_TASKS, seed=0, ori_shape=None, person=True):
    """A packed sample (uint8 image + gts at (h, w)) like PackMultiTaskInputs gives."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    s = MultiTaskDataSample(metainfo=dict(img_shape=(h, w), ori_shape=ori_shape or (h, w),
                                          img_path=f'img{seed}.png', tasks=list(tasks)))
    # Labels derived from the image so a tiny model can learn something.
    bright = img.float().mean(0, keepdim=True)
    for t in tasks:
        if t == 'semseg':
            s.set_gt(t, (bright / 256 * NUM_CLASSES).long().clamp(max=NUM_CLASSES - 1))
        elif t == 'human_parts':
            s.set_gt(t, (bright / 256 * 7).long() if person else torch.full((1, h, w), 255))
        elif t == 'saliency':
            lab = (bright > 128).long()
            lab[:, :2] = 255
            s.set_gt(t, lab)
        elif t == 'normals':
            n = torch.stack([bright[0] / 256 - 0.5, torch.zeros(h, w), torch.ones(h, w)])
            n = n / n.norm(dim=0, keepdim=True)
            n[:, :, :3] = 0  # invalid strip
            s.set_gt(t, n)
        elif t == 'depth':
            d = 1 + bright / 64
            d[:, 0] = 0
            s.set_gt(t, d)
    return img, s


def make_batch(shapes=((64, 64), (64, 64)), **kw):
    items = [make_sample(h, w, seed=i, **kw) for i, (h, w) in enumerate(shapes)]
    return dict(inputs=[i for i, _ in items], data_samples=[s for _, s in items])


# ------------------------------------------------------------------ preprocessor
def test_preprocessor_pads_inputs_and_gts_with_invalid_values():
    pre = MODELS.build(dict(type='MultiTaskDataPreprocessor', size_divisor=32))
    data = make_batch(shapes=((40, 50), (64, 30)))
    out = pre(copy.deepcopy(data), training=True)
    x = out['inputs']
    assert x.shape == (2, 3, 64, 64)  # max (64, 50) rounded up to 32
    # Normalisation with ImageNet mean/std, padding 0 after normalisation.
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    torch.testing.assert_close(x[0, :, :40, :50], (data['inputs'][0].float() - mean) / std)
    assert torch.all(x[0, :, 40:] == 0) and torch.all(x[0, :, :, 50:] == 0)
    s0 = out['data_samples'][0]
    assert s0.metainfo['batch_input_shape'] == (64, 64)
    assert s0.metainfo['img_shape'] == (40, 50)
    for task, pad in [('semseg', 255), ('human_parts', 255), ('saliency', 255), ('normals', 0),
                      ('depth', 0)]:
        gt = s0.get_gt(task).data
        assert gt.shape[1:] == (64, 64)
        assert torch.all(gt[:, 40:] == pad) and torch.all(gt[:, :, 50:] == pad), task
        orig = data['data_samples'][0].get_gt(task).data
        assert torch.equal(gt[:, :40, :50], orig)
        assert gt.dtype == orig.dtype


def test_preprocessor_fixed_size_and_test_mode():
    pre = MODELS.build(dict(type='MultiTaskDataPreprocessor', size=(96, 80)))
    data = make_batch(shapes=((40, 50), (64, 30)))
    out = pre(copy.deepcopy(data), training=False)
    assert out['inputs'].shape == (2, 3, 96, 80)
    # Test mode: ground truth (at original resolution) is left untouched.
    assert out['data_samples'][1].get_gt('depth').data.shape[1:] == (64, 30)
    with pytest.raises(ValueError, match='larger than the fixed pad size'):
        pre(make_batch(shapes=((128, 32),)), training=False)


def test_preprocessor_rejects_gt_at_other_resolution():
    pre = MODELS.build(dict(type='MultiTaskDataPreprocessor'))
    data = make_batch(shapes=((32, 32),))
    data['data_samples'][0].set_gt('depth', torch.ones(1, 16, 16))
    with pytest.raises(ValueError, match=r'gt_depth of img0.png has size \(16, 16\)'):
        pre(data, training=True)


# ------------------------------------------------------------------------- model
def test_loss_mode_keys_weights_and_finiteness():
    model = make_model()
    data = model.data_preprocessor(make_batch(person=True), training=True)
    losses = model(**data, mode='loss')
    weights = dict(semseg=1, human_parts=2, saliency=5, normals=10, depth=1)
    for t in ALL_TASKS:
        assert torch.isfinite(losses[f'loss_{t}'])
        assert losses[f'loss_{t}'].requires_grad
        assert 'loss' not in f'{t}_unweighted'
        torch.testing.assert_close(losses[f'loss_{t}'].detach(),
                                   weights[t] * losses[f'{t}_unweighted'])
    total, log_vars = model.parse_losses(losses)
    torch.testing.assert_close(total, sum(losses[f'loss_{t}'] for t in ALL_TASKS))
    assert 'semseg_unweighted' in log_vars


def test_loss_with_no_person_images_has_no_nan():
    model = make_model(tasks=['semseg', 'human_parts'])
    data = model.data_preprocessor(make_batch(tasks=['semseg', 'human_parts'], person=False),
                                   training=True)
    losses = model(**data, mode='loss')
    assert losses['loss_human_parts'].item() == 0.0
    losses['loss_human_parts'].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.heads['human_parts'].parameters()
               if p.grad is not None)


def test_task_missing_in_some_samples_is_skipped_for_those():
    model = make_model(tasks=['semseg', 'depth'])
    model.eval()  # BN in eval so the subset forward matches the full forward
    batch = make_batch(tasks=['semseg', 'depth'])
    del batch['data_samples'][1].gt_depth
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    pred = model(data['inputs'][:1], mode='tensor')['depth']
    expected = model.losses['depth'](pred, data['data_samples'][0].gt_depth.data[None])
    torch.testing.assert_close(losses['depth_unweighted'], expected.detach())


def test_task_missing_in_all_samples_raises():
    model = make_model(tasks=['semseg', 'depth'])
    data = model.data_preprocessor(make_batch(tasks=['semseg']), training=True)
    with pytest.raises(KeyError, match="'gt_depth' for configured task 'depth'"):
        model(**data, mode='loss')


def test_tensor_mode_shapes():
    model = make_model()
    data = model.data_preprocessor(make_batch(), training=False)
    outs = model(data['inputs'], mode='tensor')
    assert list(outs) == ALL_TASKS
    expected_c = dict(semseg=NUM_CLASSES, human_parts=7, saliency=1, normals=3, depth=1)
    for t, out in outs.items():
        assert out.shape == (2, expected_c[t], 64, 64)


# Mixed-size test batches are refused by default (batch-size dependence, see
# test_preprocessor_refuses_mixed_test_sizes); the un-padding logic is tested with the opt-in.
MIXED_OK = dict(data_preprocessor=dict(type='MultiTaskDataPreprocessor',
                                       allow_mixed_test_sizes=True))


def test_preprocessor_refuses_mixed_test_sizes():
    pre = MODELS.build(dict(type='MultiTaskDataPreprocessor'))
    data = make_batch(shapes=((40, 48), (32, 48)))
    with pytest.raises(ValueError, match=r'different sizes .*img0.png: \(40, 48\).*MTPad'):
        pre(copy.deepcopy(data), training=False)
    assert pre(copy.deepcopy(data), training=True)['inputs'].shape[2:] == (64, 64)
    same = make_batch(shapes=((40, 48), (40, 48)))
    assert pre(same, training=False)['inputs'].shape[2:] == (64, 64)


def test_predict_at_ori_shape_with_mixed_sizes():
    model = make_model(**MIXED_OK)
    model.eval()
    # Network-resolution sizes differ, ori shapes differ again (test-time resize).
    items = [make_sample(40, 56, seed=0, ori_shape=(80, 112)),
             make_sample(64, 48, seed=1, ori_shape=(50, 37))]
    data = model.data_preprocessor(dict(inputs=[i for i, _ in items],
                                        data_samples=[s for _, s in items]), training=False)
    assert data['inputs'].shape[2:] == (64, 64)
    with torch.no_grad():
        results = model(**data, mode='predict')
    for res, ori in zip(results, [(80, 112), (50, 37)]):
        assert sorted(res.pred_tasks) == sorted(ALL_TASKS)
        for t in ('semseg', 'human_parts'):
            p = res.get_pred(t).data
            assert p.shape == (1, *ori) and p.dtype == torch.int64
            assert getattr(res, f'logits_{t}').data.shape[1:] == ori
        sal = res.get_pred('saliency').data
        assert sal.shape == (1, *ori) and sal.min() >= 0 and sal.max() <= 1
        nrm = res.get_pred('normals').data
        assert nrm.shape == (3, *ori)
        torch.testing.assert_close(nrm.norm(dim=0), torch.ones(ori), atol=1e-4, rtol=0)
        dep = res.get_pred('depth').data
        assert dep.shape == (1, *ori) and dep.min() >= model.min_depth


def test_val_step_and_predict_without_samples():
    model = make_model(tasks=['semseg', 'saliency'], **MIXED_OK)
    batch = make_batch(tasks=['semseg', 'saliency'], shapes=((40, 40), (32, 48)))
    results = model.val_step(batch)  # mmengine path: preprocessor (test mode) + predict
    assert [r.pred_semseg.data.shape for r in results] == [(1, 40, 40), (1, 32, 48)]
    # Ground truth at original resolution is left as it was for the metric.
    assert results[1].gt_semseg.data.shape == (1, 32, 48)
    model.eval()
    with torch.no_grad():
        bare = model(torch.randn(1, 3, 64, 96), mode='predict')
    assert bare[0].pred_saliency.data.shape == (1, 64, 96)


def test_predict_crops_valid_region_before_resizing():
    model = make_model(tasks=['depth'])
    model.eval()
    img, s = make_sample(40, 56, tasks=['depth'], ori_shape=(40, 56))
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[s]), training=False)
    with torch.no_grad():
        raw = model(data['inputs'], mode='tensor')['depth']
        pred = model(**data, mode='predict')[0].pred_depth.data
    torch.testing.assert_close(pred, raw[0, :, :40, :56].clamp(min=model.min_depth))


def test_unflip_restores_orientation_and_normal_sign():
    out = torch.randn(1, 3, 4, 5)
    flipped = out.flip(3) * torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(MultiTaskDenseModel._unflip(flipped, 'horizontal', 'normals'), out)
    torch.testing.assert_close(MultiTaskDenseModel._unflip(out.flip(2), 'vertical', 'semseg'),
                               out)


def test_training_steps_reduce_loss():
    """A few optimiser steps (through mmengine's train_step) on one fixed batch."""
    torch.manual_seed(0)
    model = make_model()
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-2))
    batch = make_batch(shapes=((32, 32), (32, 32)))
    history = [model.train_step(copy.deepcopy(batch), optim) for _ in range(12)]
    first, last = history[0], history[-1]
    assert last['loss'].item() < 0.85 * first['loss'].item(), (first, last)
    for t in ALL_TASKS:
        assert last[f'{t}_unweighted'].item() < first[f'{t}_unweighted'].item(), t


def test_uncertainty_weighting():
    model = make_model(tasks=['semseg', 'depth'], uncertainty_weighting=True,
                       loss_weights=dict(depth=2.0))
    assert set(model.task_log_vars.keys()) == {'semseg', 'depth'}
    with torch.no_grad():
        model.task_log_vars['depth'].fill_(0.7)
    data = model.data_preprocessor(make_batch(tasks=['semseg', 'depth']), training=True)
    losses = model(**data, mode='loss')
    expected = 0.5 * torch.exp(torch.tensor(-0.7)) * 2.0 * losses['depth_unweighted'] + 0.35
    torch.testing.assert_close(losses['loss_depth'].detach(), expected)
    assert losses['log_var_depth'].item() == pytest.approx(0.7)
    model.parse_losses(losses)[0].backward()
    assert model.task_log_vars['semseg'].grad is not None
    assert make_model(tasks=['depth']).task_log_vars is None


def test_head_overrides_and_loss_overrides():
    model = make_model(
        tasks=['semseg', 'normals', 'depth'],
        head_overrides=dict(
            normals=dict(channels=8),
            semseg=dict(type='MMSegHeadAdapter',
                        head=dict(type='UPerHead', channels=8, pool_scales=(1, 2)))),
        losses=dict(depth=dict(type='DepthSiLogLoss')), depth_activation='softplus')
    assert model.heads['normals'].channels == 8
    assert model.heads['depth'].channels == 16
    assert type(model.heads['semseg']).__name__ == 'MMSegHeadAdapter'
    assert type(model.losses['depth']).__name__ == 'DepthSiLogLoss'
    data = model.data_preprocessor(make_batch(tasks=['semseg', 'normals', 'depth']),
                                   training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize('kwargs,err,match', [
    (dict(losses=dict(depth=dict(type='DepthSiLogLoss'))), ValueError, 'needs positive predictions'),
    (dict(head_overrides=dict(edge=dict(channels=8))), KeyError, r"\['edge'\] that are not in"),
    (dict(loss_weights=dict(saliency=1.0)), KeyError, 'loss_weights has keys'),
    (dict(num_classes=None, tasks=['semseg']), ValueError, 'need num_classes'),
    (dict(depth_activation='relu'), ValueError, 'depth_activation must be one of'),
    (dict(backbone=dict(type='_TestPyramidBackbone', tasks=['semseg'])), ValueError,
     'they must match'),
])
def test_config_errors(kwargs, err, match):
    kw = dict(tasks=['semseg', 'depth'])
    kw.update(kwargs)
    with pytest.raises(err, match=match):
        make_model(**kw)


def test_parameter_report_counts():
    model = make_model(tasks=['semseg', 'depth'])
    for p in model.backbone.stages[0].parameters():
        p.requires_grad_(False)
    rep = model.parameter_report()
    frozen = sum(p.numel() for p in model.backbone.stages[0].parameters())
    assert rep['total'] == sum(p.numel() for p in model.parameters())
    assert rep['trainable'] == rep['total'] - frozen
    assert rep['backbone_trainable'] == rep['backbone_total'] - frozen
    assert rep['heads']['depth']['total'] == sum(p.numel() for p in model.heads['depth'].parameters())


# ------------------------------------------------------- integration: real backbone
TINY_SWIN = dict(type='MMSegSwin', embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                 window_size=2, mlp_ratio=2)


def test_with_tiny_mmseg_swin_vmt_adapter():
    tasks = ['semseg', 'saliency', 'normals', 'depth']
    model = make_model(tasks=tasks, backbone=dict(
        type='AdaptedBackbone', backbone=TINY_SWIN, peft=dict(type='VMTAdapter', bottleneck=4)))
    assert model.backbone.tasks == tasks  # filled in from the model
    # Only the adapter/KEM parameters (and the heads) train; the Swin weights are frozen.
    swin = model.backbone.host.backbone
    assert not any(p.requires_grad for p in swin.parameters())
    trainable_bb = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable_bb and all(n.startswith('peft.') for n in trainable_bb)

    batch = make_batch(tasks=tasks, shapes=((64, 64), (64, 64)))
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    model.parse_losses(losses)[0].backward()
    grads = [p.grad for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in swin.parameters())

    model.eval()
    items = [make_sample(64, 64, tasks=tasks, seed=3, ori_shape=(90, 70))]
    data = model.data_preprocessor(dict(inputs=[i for i, _ in items],
                                        data_samples=[s for _, s in items]), training=False)
    with torch.no_grad():
        res = model(**data, mode='predict')[0]
    assert res.pred_semseg.data.shape == (1, 90, 70)
    assert res.pred_normals.data.shape == (3, 90, 70)
