"""Task-batched heads: same outputs, gradients and BN statistics as the per-task loop."""
import copy

import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import torch

from mtdense.models.heads import can_batch_heads, task_batched_heads_forward
from mtdense.models.heads.light_head import (compose_level, composed_weights, fused_affine,
                                             level_factors)
from mtdense.models.heads.task_batched import ScratchBuffers
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
    _away_from_init([model], torch.Generator().manual_seed(1), 0.1)
    return model


def _away_from_init(modules, g, scale):
    """Add noise of ``scale`` to the trainable parameters and draw BN running statistics."""
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
            for name, b in module.named_buffers():
                if name.endswith('running_var'):
                    b.uniform_(0.5, 2.0, generator=g)
                elif name.endswith('running_mean'):
                    b.normal_(0, 0.3, generator=g)


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


IN_CHANNELS = [8, 16, 32, 64]


def _heads(norm_cfg, num=3, channels=8):
    """``num`` heads of one layout (out_channels 2, 4, ...) away from their init."""
    torch.manual_seed(0)
    heads = [MODELS.build(dict(type='LightMultiScaleHead', in_channels=IN_CHANNELS,
                               out_channels=2 + 2 * t, channels=channels,
                               norm_cfg=norm_cfg)).double() for t in range(num)]
    _away_from_init(heads, torch.Generator().manual_seed(1), 0.3)
    return heads


def _pyramid(stacked, num=3, batch=2, size=64):
    """Per level task-major ``(num * batch, ...)`` if ``stacked`` else shared ``(batch, ...)``;
    at 64 px the stride-32 level has fewer tokens than channels, so training projects it
    factored (reducer, then fusion)."""
    g = torch.Generator().manual_seed(2)
    return [torch.randn((num if s else 1) * batch, c, size // r, size // r, generator=g,
                        dtype=torch.float64)
            for c, r, s in zip(IN_CHANNELS, (4, 8, 16, 32), stacked)]


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), None])
@pytest.mark.parametrize('stacked', [(True,) * 4, (True, False, True, False), (False,) * 4])
def test_plain_reassociated_and_batched_forms_agree(norm_cfg, stacked):
    """One parameterisation, three forms: each head's literal layout (``forward_plain``), its
    reassociated forward and the task-batched forward give the same outputs, gradients and
    BN statistics, in training (batch statistics) and eval (BN folded); and without autograd
    (composed weights memoised in scratch buffers) the same outputs again."""
    heads, feats = _heads(norm_cfg), _pyramid(stacked)
    B, T = 2, len(heads)
    plain, reassoc = copy.deepcopy(heads), copy.deepcopy(heads)

    def task_levels(t):
        return [f[t * B:(t + 1) * B] if s else f for f, s in zip(feats, stacked)]

    for training in (True, False):
        for group in (heads, plain, reassoc):
            for h in group:
                h.train(training)
                h.zero_grad()
        out_b = task_batched_heads_forward(heads, feats, stacked, batch_size=B)
        out_p = [h.forward_plain(task_levels(t)) for t, h in enumerate(plain)]
        out_r = [h(task_levels(t)) for t, h in enumerate(reassoc)]
        w = [torch.randn_like(o) for o in out_p]
        for outs in (out_b, out_p, out_r):
            sum((o * w_t).sum() for o, w_t in zip(outs, w)).backward()
        for t in range(T):
            assert out_b[t].shape == out_p[t].shape == (B, 2 + 2 * t, 16, 16)
            torch.testing.assert_close(out_r[t], out_p[t], rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(out_b[t], out_p[t], rtol=1e-10, atol=1e-10)
            for form in (heads, reassoc):
                for (name, p), q in zip(form[t].named_parameters(), plain[t].parameters()):
                    torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-10, msg=name)
                for (name, b), c in zip(form[t].named_buffers(), plain[t].buffers()):
                    torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10, msg=name)
        if not training:
            scratch = ScratchBuffers()
            with torch.no_grad():
                for _ in range(2):  # the second call reuses the memoised composed weights
                    outs = task_batched_heads_forward(heads, feats, stacked, B, scratch=scratch)
                    for o, e in zip(outs, out_p):
                        torch.testing.assert_close(o, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), dict(type='BN', affine=False), None])
@pytest.mark.parametrize('training', [True, False])
def test_one_head_and_stacked_heads_share_the_parameterisation(norm_cfg, training):
    """``level_weights()`` is ``composed_weights(head)``; on T heads the same functions give
    every head's fusion map and biases bit for bit (element-wise ops, per-head products)
    and its composed weights as one batched product; the folded fusion map is the
    ConvModule's conv, then its eval BN."""
    heads = _heads(norm_cfg)
    for h in heads:
        h.train(training)
    folds = norm_cfg is not None and not training
    stacked, folded = composed_weights(heads)
    fuse_w, fuse_b, folded_fusion = fused_affine(heads)
    assert folded == folded_fusion == folds
    for t, h in enumerate(heads):
        assert h.folds_norm() == folds
        own, own_folded = h.level_weights()
        assert own_folded == folds
        w_t, b_t, _ = fused_affine(h)
        assert torch.equal(fuse_w[t], w_t)
        assert (fuse_b is None and b_t is None) or torch.equal(fuse_b[t], b_t)
        for lvl, ((w, b), (w_s, b_s)) in enumerate(zip(own, stacked)):
            assert w.shape == (8, IN_CHANNELS[lvl]) and b.shape == (8,)
            assert w_s.shape == (3, 8, IN_CHANNELS[lvl]) and b_s.shape == (3, 8)
            assert torch.equal(b_s[t], b)
            torch.testing.assert_close(w_s[t], w, rtol=1e-12, atol=1e-12)
            w_f, b_f = compose_level(level_factors(h, w_t, lvl), b_t, lvl)
            assert torch.equal(w_f, w) and torch.equal(b_f, b)
    # the fusion map: the ConvModule's conv, then its norm where folded, as one affine map
    x = torch.randn(2, 8 * len(IN_CHANNELS), 5, 7, dtype=torch.float64)
    for t, h in enumerate(heads):
        expect = h.fuse.norm(h.fuse.conv(x)) if folds else h.fuse.conv(x)
        got = torch.nn.functional.conv2d(x, fuse_w[t][:, :, None, None],
                                         None if fuse_b is None else fuse_b[t])
        torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-10)


def test_fused_affine_rejects_mixed_modes():
    heads = _heads(dict(type='BN'), num=2)
    heads[1].eval()
    with pytest.raises(RuntimeError, match='differ in train/eval mode'):
        fused_affine(heads)
