"""Task-batched heads: same outputs, gradients and BN statistics as the per-task loop."""
import copy

import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import torch

from mtdense.models.heads import can_batch_heads, task_batched_heads_forward
from mtdense.registry import MODELS

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
SWIN = dict(type='MMSegSwin', embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2),
            window_size=4, drop_path_rate=0.)


def _model(peft, heads=dict(type='LightMultiScaleHead', channels=8), **kw):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiTaskDenseModel', tasks=TASKS, num_classes=6, heads=heads,
        backbone=dict(type='AdaptedBackbone', backbone=SWIN, peft=peft), **kw)).double()
    # away from the identity init, so every task's features and heads differ
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith('running_var'):
                b.uniform_(0.5, 2.0, generator=g)
            elif name.endswith('running_mean'):
                b.normal_(0, 0.3, generator=g)
    return model


PEFTS = {
    'vmt': dict(type='VMTAdapter'),  # every level stacked by task
    'vmt_taps_0_2': dict(type='VMTAdapterLite', tap_blocks=[1, 5]),  # mixed stacked / shared
    'full_ft': dict(type='FullFineTune'),  # one shared pyramid
    'per_task_lora': dict(type='PerTaskLoRA', rank=2),
}


@pytest.mark.parametrize('peft', list(PEFTS))
def test_batched_heads_equal_the_per_task_loop(peft):
    batched = _model(PEFTS[peft])
    loop = copy.deepcopy(batched)
    loop.batch_heads = False
    assert batched.heads_batched() and not loop.heads_batched()
    x = torch.randn(3, 3, 64, 96, dtype=torch.float64)
    for training in (True, False):
        batched.train(training)
        loop.train(training)
        batched.zero_grad()
        loop.zero_grad()
        out_b, out_l = batched(x, mode='tensor'), loop(x, mode='tensor')
        assert list(out_b) == TASKS
        for t in TASKS:
            assert out_b[t].shape == out_l[t].shape == (3, out_l[t].shape[1], 64, 96)
            torch.testing.assert_close(out_b[t], out_l[t], rtol=1e-9, atol=1e-9, msg=t)
        if training:
            w = {t: torch.randn_like(out_l[t]) for t in TASKS}
            sum((out_b[t] * w[t]).sum() for t in TASKS).backward()
            sum((out_l[t] * w[t]).sum() for t in TASKS).backward()
            for (name, p), q in zip(batched.named_parameters(), loop.parameters()):
                if p.requires_grad:
                    torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-9, msg=name)
        for (name, b), c in zip(batched.named_buffers(), loop.buffers()):
            torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10, msg=name)


def test_loss_and_predict_use_the_batched_path_and_agree():
    batched = _model(PEFTS['vmt'])
    loop = copy.deepcopy(batched)
    loop.batch_heads = False
    calls = []
    import mtdense.models.multitask_model as mm
    orig = mm.task_batched_heads_forward

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    mm.task_batched_heads_forward = counting
    try:
        batched.eval()
        loop.eval()
        x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
        with torch.no_grad():
            pb = batched(x, mode='predict')
            pl = loop(x, mode='predict')
    finally:
        mm.task_batched_heads_forward = orig
    assert len(calls) == 1  # one call serves all five tasks
    for sb, sl in zip(pb, pl):
        for t in TASKS:
            torch.testing.assert_close(sb.get(f'pred_{t}').data, sl.get(f'pred_{t}').data)


def test_heads_that_cannot_be_batched_fall_back_to_the_loop():
    # different widths per task
    m = _model(PEFTS['vmt'], head_overrides=dict(depth=dict(channels=4)))
    assert not m.heads_batched()
    # an mmseg decode head
    m = _model(PEFTS['vmt'], heads=dict(
        type='MMSegHeadAdapter', head=dict(type='FCNHead', channels=8, in_index=3, num_convs=1,
                                           concat_input=False)))
    assert not m.heads_batched()
    out = m(torch.randn(1, 3, 64, 64, dtype=torch.float64), mode='tensor')
    assert out['semseg'].shape == (1, 6, 64, 64)
    # SyncBN (statistics across processes) is left to the per-task path
    m = _model(PEFTS['vmt'], heads=dict(type='LightMultiScaleHead', channels=8,
                                        norm_cfg=dict(type='SyncBN')))
    assert not can_batch_heads([m.heads[t] for t in TASKS])
    # no norm at all batches fine
    m = _model(PEFTS['vmt'], heads=dict(type='LightMultiScaleHead', channels=8, norm_cfg=None))
    assert m.heads_batched()


def test_batched_forward_checks_its_inputs():
    m = _model(PEFTS['vmt'])
    heads = [m.heads[t] for t in TASKS]
    feats, stacked = m.backbone.forward_stacked(torch.randn(2, 3, 64, 64, dtype=torch.float64))
    assert all(stacked) and feats[0].shape[0] == 2 * len(TASKS)
    with pytest.raises(ValueError, match='expected 5 tasks x 3'):
        task_batched_heads_forward(heads, feats, stacked, batch_size=3)
    with pytest.raises(ValueError, match='expected 4 levels'):
        task_batched_heads_forward(heads, feats[:3], stacked[:3], batch_size=2)


def test_batched_heads_under_bf16_autocast_match_the_loop():
    """Mixed precision: per-task BN statistics are taken in fp32, as autocast runs batch_norm."""
    batched = _model(PEFTS['vmt']).float()
    loop = copy.deepcopy(batched)
    loop.batch_heads = False
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out_b, out_l = batched(x, mode='tensor'), loop(x, mode='tensor')
    for t in TASKS:
        torch.testing.assert_close(out_b[t].float(), out_l[t].float(), rtol=0.05, atol=0.05)
    for (name, b), c in zip(batched.named_buffers(), loop.buffers()):
        if b.is_floating_point():
            torch.testing.assert_close(b, c, rtol=2e-2, atol=2e-2, msg=name)
