"""The predict path: per-task upsampling, in-place post-processing and the scratch buffers
of CPU inference (heads and VMT task maps) change no prediction and leak nothing between
calls; ``mode='tensor'`` and training are unaffected."""
import copy
import pickle
import threading

import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import torch
import torch.nn.functional as F

from mtdense.registry import MODELS
from mtdense.structures import MultiTaskDataSample
from mtdense.tasks import get_task

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth', 'edge', 'semseg_2']
SWIN = dict(type='MMSegSwin', embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2),
            window_size=4, drop_path_rate=0.)
TIMM_SWIN = dict(type='TimmSwin', model_name='swin_tiny_patch4_window7_224', img_size=64,
                 embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=4,
                 drop_path_rate=0.)
FIELDS = ['pred_semseg', 'logits_semseg', 'pred_human_parts', 'logits_human_parts',
          'pred_saliency', 'pred_normals', 'pred_depth', 'pred_edge', 'pred_semseg_2',
          'logits_semseg_2']


def _model(dtype=torch.float64, backbone=SWIN, peft=dict(type='VMTAdapter'), **kw):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiTaskDenseModel', tasks=TASKS, num_classes=6,
        heads=dict(type='LightMultiScaleHead', channels=8),
        backbone=dict(type='AdaptedBackbone', backbone=backbone, peft=peft), **kw)).to(dtype)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the identity init: tasks differ
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
    return model.eval()


def _samples(batch=2, in_hw=(64, 64)):
    """Valid regions smaller than the padded input, a flip, an evaluation size of its own."""
    metas = [dict(img_shape=(56, 64), ori_shape=(70, 80)),
             dict(img_shape=(64, 48), ori_shape=(64, 48), flip=True,
                  flip_direction='horizontal'),
             dict(img_shape=in_hw, ori_shape=in_hw, eval_shape=(40, 40))]
    return [MultiTaskDataSample(metainfo=dict(metas[i % 3])) for i in range(batch)]


def _reference(model, x, samples, joint: bool):
    """The documented semantics, with out-of-place ops: crop the valid region of the
    input-size output, un-flip, resize to the evaluation size, the task definition's
    (out-of-place) ``predictions``.
    ``joint``: the upsampled outputs of ``mode='tensor'`` (one interpolation of all tasks,
    the previous implementation); else each task's head output upsampled on its own."""
    if joint:
        outs = model._forward(x)
    else:
        raw = model._head_outputs(x)
        outs = {t: F.interpolate(o, size=x.shape[2:], mode='bilinear', align_corners=False)
                for t, o in zip(model.tasks, raw)}
    res = []
    for i, s in enumerate(samples):
        meta, got = s.metainfo, {}
        ih, iw = meta['img_shape']
        ori = meta.get('eval_shape', meta['ori_shape'])
        flip = meta.get('flip_direction') if meta.get('flip') else None
        for t in model.tasks:
            out = model._unflip(outs[t][i:i + 1, :, :ih, :iw], flip, t)
            if (ih, iw) != tuple(ori):
                out = F.interpolate(out, size=tuple(ori), mode='bilinear', align_corners=False)
            fields = model.task_defs[t].predictions(out[0], model)
            got.update({f'{name}_{t}': v for name, v in fields.items()})
        res.append(got)
    return res


def _predicted_and_reference(dtype, joint: bool, **kw):
    model = _model(dtype, **kw)
    x = torch.randn(3, 3, 64, 64, dtype=dtype)
    samples = _samples(3)
    got = _predict(model, x, samples)
    with torch.no_grad():
        ref = _reference(model, x, samples, joint=joint)
    return got, ref


def _predict(model, x, samples):
    with torch.inference_mode():
        out = model(x, copy.deepcopy(samples), mode='predict')
    return [{k: s.get(k).data for k in FIELDS} for s in out]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('depth_activation', ['none', 'exp', 'softplus'])
def test_predictions_equal_the_per_task_reference_bit_for_bit(dtype, depth_activation):
    got, ref = _predicted_and_reference(dtype, False, depth_activation=depth_activation)
    for g, r in zip(got, ref):
        for k in FIELDS:
            assert g[k].shape == r[k].shape, k
            assert torch.equal(g[k], r[k]), k


def test_predictions_equal_the_previous_joint_upsampling():
    """Against the previous implementation (one interpolation of all tasks): labels
    identical; maps equal to rounding (vectorised and scalar channel lanes round
    differently in the last bit)."""
    got, ref = _predicted_and_reference(torch.float64, True)
    for g, r in zip(got, ref):
        for k in FIELDS:
            if k.startswith('pred_semseg') or k == 'pred_human_parts':
                assert torch.equal(g[k], r[k]), k
            else:
                torch.testing.assert_close(g[k], r[k], rtol=1e-12, atol=1e-12, msg=k)


def test_tensor_mode_and_training_do_not_use_the_scratch_buffers_differently():
    model = _model(torch.float32)
    x = torch.randn(2, 3, 64, 64)
    with torch.enable_grad():
        plain = model(x, mode='tensor')  # autograd: no scratch anywhere
    assert model._scratch().nbytes() == 0 and model.backbone.peft._scratch.nbytes() == 0
    with torch.no_grad():
        reused = model(x, mode='tensor')
    assert model._scratch().nbytes() > 0 and model.backbone.peft._scratch.nbytes() > 0
    for t in TASKS:
        assert torch.equal(plain[t], reused[t]), t
    model.train()
    losses = model.loss(x, [_train_sample() for _ in range(2)])
    assert all(torch.isfinite(v) for v in losses.values())


def _train_sample():
    s = MultiTaskDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
    g = torch.Generator().manual_seed(0)
    for t in TASKS:
        s.set_gt(t, get_task(t).random_target(64, 64, g, num_classes=6))
    return s


def test_a_later_call_leaves_earlier_results_alone_and_reuses_the_buffers():
    model = _model(torch.float32)
    x1, x2 = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    samples = _samples(2)
    first = _predict(model, x1, samples)
    kept = [{k: v.clone() for k, v in d.items()} for d in first]
    with torch.no_grad():
        t1 = model(x1, mode='tensor')
        t1_kept = {k: v.clone() for k, v in t1.items()}
        f1 = model.backbone(x1)
        f1_kept = {t: [f.clone() for f in fs] for t, fs in f1.items()}
    ptrs = {k: b.data_ptr() for k, b in model._scratch()._local.buffers.items()}
    _predict(model, x2, samples)
    with torch.no_grad():
        model(x2, mode='tensor')
        model.backbone(x2)
    for d, k in zip(first, kept):
        for name in FIELDS:
            assert torch.equal(d[name], k[name]), name
    for t in TASKS:
        assert torch.equal(t1[t], t1_kept[t])
        assert all(torch.equal(a, b) for a, b in zip(f1[t], f1_kept[t]))
    # same shapes: the same buffers again (no fresh large allocation per call)
    assert {k: b.data_ptr() for k, b in model._scratch()._local.buffers.items()} == ptrs


def test_a_view_returning_output_transform_gets_fresh_task_maps():
    """timm Swin hands out its block output itself (a permuted view) for the first levels:
    the VMT task maps there must not be reused across calls."""
    model = _model(torch.float32, backbone=TIMM_SWIN)
    x1, x2 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f1 = model.backbone(x1)
        kept = {t: [f.clone() for f in fs] for t, fs in f1.items()}
        model.backbone(x2)
    for t in TASKS:
        assert all(torch.equal(a, b) for a, b in zip(f1[t], kept[t])), t


def test_concurrent_predictions_in_threads_match_sequential_ones():
    model = _model(torch.float32)
    xs = [torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    samples = _samples(1)
    expect = [_predict(model, x, samples) for x in xs]
    got = [None] * len(xs)

    def work(i):
        for _ in range(3):
            got[i] = _predict(model, xs[i], samples)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for g, e in zip(got, expect):
        for name in FIELDS:
            assert torch.equal(g[0][name], e[0][name]), name


def test_models_with_buffers_copy_and_pickle():
    model = _model(torch.float32)
    x = torch.randn(1, 3, 64, 64)
    samples = _samples(1)
    before = _predict(model, x, samples)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone._scratch().nbytes() == 0  # buffers are not copied
        after = _predict(clone, x, samples)
        for name in FIELDS:
            assert torch.equal(after[0][name], before[0][name]), name


@pytest.mark.parametrize('widths', [(21, 7, 1, 3, 21, 7, 1, 3), (21,), (5, 9, 12)])
def test_joint_upsampling_gradients_equal_the_plain_ones(widths):
    """The loss path's upsampling hands its backward a channels-last gradient (faster on
    CPU): outputs and gradients bit-identical to F.interpolate's, double backward works."""
    from mtdense.models.multitask_model import _upsample
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, sum(widths), 32, 32, generator=g).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(2, sum(widths), 128, 128, generator=g).requires_grad_()  # NCHW upstream
    y = _upsample(x, (128, 128), False)
    assert y.grad_fn is not None and 'ChannelsLastUpsample' in type(y.grad_fn).__name__
    (gx,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
    ref = F.interpolate(x, size=(128, 128), mode='bilinear', align_corners=False)
    (rx,) = torch.autograd.grad((ref * w).sum(), x, create_graph=True)
    assert torch.equal(y, ref) and torch.equal(gx, rx)
    # double backward (through the gradient, into the upstream one)
    (gw,) = torch.autograd.grad(gx.square().sum(), w)
    (rw,) = torch.autograd.grad(rx.square().sum(), w)
    torch.testing.assert_close(gw, rw, rtol=1e-6, atol=1e-6)


def test_training_losses_and_gradients_equal_the_per_task_head_loop():
    """Training mode through the task-batched heads (native per-task BN, factored coarse
    levels) and the channels-last upsampling backward: losses, gradients and BN running
    statistics equal the per-task loop's to float rounding."""
    batched = _model(torch.float64).train()
    loop = copy.deepcopy(batched)
    loop.batch_heads = False
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    samples = [_train_sample() for _ in range(2)]
    lb, ll = batched.loss(x, samples), loop.loss(x, samples)
    for k in lb:
        torch.testing.assert_close(lb[k], ll[k], rtol=1e-10, atol=1e-10, msg=k)
    sum(v for k, v in lb.items() if k.startswith('loss_')).backward()
    sum(v for k, v in ll.items() if k.startswith('loss_')).backward()
    for (name, p), q in zip(batched.named_parameters(), loop.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, b), c in zip(batched.named_buffers(), loop.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10, msg=name)
