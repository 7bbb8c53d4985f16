"""Conv seed methods (Modulation Adapters, depthwise sharing) on tiny timm CNNs."""
import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from safetensors.torch import save_file

import mtdense.models  # noqa: F401  (registers heads, losses, MultiTaskDenseModel)
from mtdense.models.adapters.depthwise_sharing import DepthwiseSharing  # noqa: F401
from mtdense.models.adapters.modulation import ModulationAdapter, ModulationBank  # noqa: F401
from mtdense.models.backbones.conv_multitask import ConvMultiTaskBackbone
from mtdense.models.petl import ConvSlot, NormSlot, safe_key
from mtdense.registry import MODELS
from mtdense.structures import MultiTaskDataSample

MNV2 = 'mobilenetv2_050'
TASKS = ['semseg', 'depth', 'saliency']


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Tiny models: one intra-op thread is much faster on a shared, loaded CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def build(model_name=MNV2, method=None, tasks=TASKS, **bb):
    method = method or dict(type='ModulationAdapter', rank=2)
    return ConvMultiTaskBackbone(dict(model_name=model_name, **bb), method, tasks)


def base_like(bb: ConvMultiTaskBackbone):
    """The unmodified timm features model with the backbone's (base) weights."""
    base = timm.create_model(bb.model_name, pretrained=False, features_only=True,
                             out_indices=(1, 2, 3, 4))
    base.load_state_dict(bb.model.state_dict(), strict=True)  # slot keys == timm keys
    return base.eval()


def randomize_bn_stats(model, seed=0):
    """Non-trivial running statistics so BN handling errors show up."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def timm_state(model_name, seed=0):
    torch.manual_seed(seed)
    m = timm.create_model(model_name, pretrained=False)
    with torch.no_grad():
        randomize_bn_stats(m, seed)
    return m.state_dict()


def images(b=2, size=64, seed=0):
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_close_rel(actual, expected, tol=1e-4):
    """Close up to float rounding, relative to the map's magnitude (grouped vs plain convs)."""
    scale = expected.abs().max().item() + 1e-6
    assert (actual - expected).abs().max().item() <= tol * scale, (actual - expected).abs().max()


def perturb(method, seed=1, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# ----------------------------------------------------------- Modulation Adapters
@pytest.mark.parametrize('model_name,size,norm', [(MNV2, 64, 'task'), (MNV2, 64, 'frozen'),
                                                  ('resnet18', 32, 'task')])
def test_modulation_identity_at_init(tmp_path, model_name, size, norm):
    path = str(tmp_path / 'w.safetensors')
    save_file(timm_state(model_name), path)
    bb = build(model_name, dict(type='ModulationAdapter', rank=3, norm=norm),
               pretrained_path=path).eval()
    base = base_like(bb)
    # M_t = 1 exactly, so every task's modulated weights are the base weights bit for bit
    for name, slot in bb.method._convs.items():
        w = bb.method.banks[safe_key(name)](slot.weight)
        for t in range(len(TASKS)):
            assert torch.equal(w.unflatten(0, (len(TASKS), -1))[t], slot.weight), name
    x = images(size=size)
    with torch.no_grad():
        ref = base(x)
        out = bb(x)
        single = bb(x, tasks=['depth'])
    assert list(out) == TASKS and [f.shape[1] for f in ref] == bb.out_channels
    for t in TASKS:
        for r, o in zip(ref, out[t]):
            assert_close_rel(o, r)
    # one stream is the plain conv: identical to the frozen base network
    for r, o in zip(ref, single['depth']):
        assert torch.equal(o, r)


def test_modulation_matches_explicitly_modulated_network():
    """After training-like changes, stream t == the base net with W * (A_t B_t^T) and BN_t."""
    torch.manual_seed(0)
    bb = build(MNV2, dict(type='ModulationAdapter', rank=2)).eval()
    randomize_bn_stats(bb.method)
    perturb(bb.method)
    x = images(size=48)
    with torch.no_grad():
        out = bb(x)
        for ti, task in enumerate(TASKS):
            ref_model = base_like(bb)
            mods = dict(ref_model.named_modules())
            for name, slot in bb.method._convs.items():
                bank = bb.method.banks[safe_key(name)]
                m = bank.a[ti] @ bank.b[ti].T
                mods[name].weight.copy_(slot.weight * m[:, :, None, None])
            for name, slot in bb.method._norms.items():
                tbn = bb.method.task_norms[safe_key(name)]
                c = slot.num_features
                sl = slice(ti * c, (ti + 1) * c)
                for attr in ('weight', 'bias', 'running_mean', 'running_var'):
                    getattr(mods[name], attr).copy_(getattr(tbn, attr)[sl])
            ref = ref_model(x)
            for r, o in zip(ref, out[task]):
                assert_close_rel(o, r)
            alone = bb(x, tasks=[task])[task]
            for r, o in zip(ref, alone):
                assert_close_rel(o, r)
    # a subset in another order gives the same per-task features
    with torch.no_grad():
        sub = bb(x, tasks=['saliency', 'semseg'])
    for t in ('saliency', 'semseg'):
        for a, b in zip(sub[t], out[t]):
            assert_close_rel(a, b)


def test_modulation_budget_formula():
    """Per task: sum_layers min(k, O, I/g) (O + I/g) + 2 * BN channels (norm='task')."""
    def expected(bb, rank, norm):
        n = 0
        for slot in bb.method._convs.values():
            o, i = slot.out_channels, slot.in_channels // slot.groups
            n += min(rank, o, i) * (o + i)
        if norm == 'task':
            n += sum(2 * s.num_features for s in bb.method._norms.values())
        return n

    reports = {}
    for rank in (1, 2, 7):
        for norm in ('task', 'frozen'):
            bb = build(MNV2, dict(type='ModulationAdapter', rank=rank, norm=norm), tasks=['a', 'b'])
            rep = bb.param_groups_report()
            per_task = expected(bb, rank, norm)
            assert rep['per_task_trainable'] == {'a': per_task, 'b': per_task}
            assert rep['method_trainable'] == rep['method_expected'] == 2 * per_task
            assert rep['trainable'] == 2 * per_task and rep['shared_trainable'] == 0
            assert rep['backbone_trainable'] == 0
            reports[rank, norm] = per_task
    # depthwise convs cap the rank at 1 (in/groups = 1): rank 7 costs less than 7x rank 1
    assert reports[1, 'task'] < reports[2, 'task'] < reports[7, 'task'] < 7 * reports[1, 'task']
    # the BN part is independent of k
    bn_part = reports[2, 'task'] - reports[2, 'frozen']
    assert bn_part == reports[7, 'task'] - reports[7, 'frozen'] > 0
    bank = ModulationBank(3, 16, 1, 4)
    assert bank.rank == 1 and ModulationBank.num_params(3, 16, 1, 4) == 3 * 17


def test_modulation_without_depthwise_and_macs():
    bb = build(MNV2, dict(type='ModulationAdapter', rank=2, modulate_depthwise=False))
    dw = [s for s in bb.method._convs.values() if s.depthwise]
    assert dw and all(safe_key(s.name) not in bb.method.banks for s in dw)
    macs = bb.macs_report((64, 64))
    expected_fwd = sum(
        s.out_channels * (s.in_channels // s.groups) * (min(2, s.out_channels, s.in_channels)
                                                        + s.kernel_size[0] * s.kernel_size[1])
        for s in bb.method._convs.values() if not s.depthwise)
    assert macs['per_task'] == macs['base'] and macs['per_forward'] == expected_fwd
    assert macs['all_tasks'] == len(TASKS) * macs['base']


def test_modulation_gradients_reach_only_the_method():
    bb = build(MNV2, dict(type='ModulationAdapter', rank=2)).train()
    out = bb(images(size=32))
    sum(f.float().pow(2).mean() for t in TASKS for f in out[t]).backward()
    assert all(not p.requires_grad and p.grad is None for p in bb.model.parameters())
    grads = [p.grad for p in bb.method.parameters()]
    assert all(g is not None for g in grads)
    # the low-rank columns of B start at zero but get gradients (A's are random)
    bank = next(iter(bb.method.banks.values()))
    assert bank.b.grad[:, :, 1:].abs().sum() > 0


def test_frozen_norm_ignores_train_mode_and_task_norm_updates_stats():
    bb = build(MNV2, dict(type='ModulationAdapter', rank=2, norm='frozen'))
    base = base_like(bb)
    x = images(size=32)
    with torch.no_grad():
        out = bb.train()(x, tasks=['semseg'])['semseg']
    for r, o in zip(base(x), out):
        assert torch.equal(o, r)
    bb = build(MNV2, dict(type='ModulationAdapter', rank=2, norm='task')).train()
    tbn = next(iter(bb.method.task_norms.values()))
    before = tbn.running_mean.clone().view(len(TASKS), -1)
    with torch.no_grad():
        bb(x, tasks=['depth'])
    after = tbn.running_mean.view(len(TASKS), -1)
    assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
    assert not torch.equal(after[1], before[1])


# ------------------------------------------------------------- depthwise sharing
def test_depthwise_sharing_identity_at_init(tmp_path):
    path = str(tmp_path / 'w.safetensors')
    save_file(timm_state(MNV2), path)
    x = images(size=64)
    bb = build(MNV2, dict(type='DepthwiseSharing', gate=False), pretrained_path=path).eval()
    base = base_like(bb)
    with torch.no_grad():
        ref, out = base(x), bb(x)
    for t in TASKS:  # own bank == pretrained filters, per-task BN == base BN: exact
        for r, o in zip(ref, out[t]):
            assert torch.equal(o, r)
    gated = build(MNV2, dict(type='DepthwiseSharing', gate=True), pretrained_path=path).eval()
    with torch.no_grad():
        out = gated(x)
    for t in TASKS:  # gate weights sum to one over identical banks
        for r, o in zip(ref, out[t]):
            assert_close_rel(o, r)


def test_depthwise_sharing_gate_mixes_banks():
    torch.manual_seed(0)
    bb = build(MNV2, dict(type='DepthwiseSharing', gate=True, gate_min_hidden=4)).eval()
    perturb(bb.method)
    method = bb.method
    slot = next(s for s in method._convs.values() if s.depthwise and s.stride == (2, 2))
    key = safe_key(slot.name)
    b, n, c = 2, len(TASKS), slot.in_channels
    x = torch.randn(b * n, c, 12, 12)
    with torch.no_grad():
        y = method.conv_forward(slot, x)
        xs = x.view(n, b, c, 12, 12)  # task-major stack
        gate = method.gates[key]
        for bi in range(b):
            for t in range(n):
                pooled = xs[t, bi].mean((1, 2))
                h = F.relu(pooled @ gate.fc1_weight[t] + gate.fc1_bias[t])
                g = torch.softmax(h @ gate.fc2_weight[t] + gate.fc2_bias[t], -1)
                ref = sum(g[d] * F.conv2d(xs[t, bi:bi + 1], method.banks[key].weight[d], None,
                                          slot.stride, slot.padding, slot.dilation, c)
                          for d in range(n))
                torch.testing.assert_close(y.view(n, b, *y.shape[1:])[t, bi], ref[0],
                                           rtol=1e-4, atol=1e-5)
    # no gate: task t uses bank t only
    method.gate = False
    with torch.no_grad():
        y = method.conv_forward(slot, x).view(n, b, -1, 6, 6)
        for t in range(n):
            ref = F.conv2d(xs[t], method.banks[key].weight[t], None, slot.stride,
                           slot.padding, slot.dilation, c)
            torch.testing.assert_close(y[t], ref, rtol=1e-5, atol=1e-6)


def test_depthwise_sharing_counts_and_train_shared():
    tasks = ['a', 'b']
    bb = build(MNV2, dict(type='DepthwiseSharing', gate=True, gate_reduction=16,
                          gate_min_hidden=4, train_shared=True), tasks=tasks)
    method = bb.method
    dw = [s for s in method._convs.values() if s.depthwise]
    shared = [s for s in method._convs.values() if not s.depthwise]
    bank = sum(s.out_channels * s.kernel_size[0] * s.kernel_size[1] for s in dw)
    hidden = [max(s.in_channels // 16, 4) for s in dw]
    gate = sum(s.in_channels * h + h + h * 2 + 2 for s, h in zip(dw, hidden))
    bn = sum(2 * s.num_features for s in method._norms.values())
    shared_params = sum(s.weight.numel() for s in shared)
    rep = bb.param_groups_report()
    assert rep['method_trainable'] == rep['method_expected'] == 2 * (bank + gate + bn)
    assert rep['per_task_owned'] == {'a': bank + gate + bn, 'b': bank + gate + bn}
    # with the gate every task reads every bank: banks and shared convs are shared
    assert rep['per_task_trainable'] == {'a': gate + bn, 'b': gate + bn}
    assert rep['backbone_trainable'] == shared_params
    assert rep['shared_trainable'] == 2 * bank + shared_params
    no_gate = build(MNV2, dict(type='DepthwiseSharing', gate=False), tasks=tasks)
    rep = no_gate.param_groups_report()
    assert rep['per_task_trainable'] == {'a': bank + bn, 'b': bank + bn}
    assert rep['shared_trainable'] == 0 and rep['backbone_trainable'] == 0
    macs = no_gate.macs_report((32, 32))
    assert macs['per_task'] == macs['base']
    macs_g = bb.macs_report((32, 32))
    assert macs_g['per_task'] > macs_g['base']


def test_depthwise_sharing_rejects_dense_backbone():
    with pytest.raises(ValueError, match='layer1.0.conv1 is a dense 3x3 conv'):
        build('resnet18', dict(type='DepthwiseSharing'))


# ------------------------------------------------------------ backbone plumbing
def test_checkpoint_loading_and_errors(tmp_path):
    state = timm_state(MNV2)
    pth = str(tmp_path / 'w.pth')
    torch.save(state, pth)
    bb = build(MNV2, pretrained_path=pth)
    assert 'classifier.weight' in bb.checkpoint_report['skipped']
    for k, v in bb.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    bad = dict(state)
    bad['blocks.1.0.conv_pw.weight'] = torch.zeros(1)
    torch.save(bad, pth)
    with pytest.raises(ValueError, match='blocks.1.0.conv_pw.weight has shape'):
        build(MNV2, pretrained_path=pth)
    torch.save(timm_state('resnet18'), pth)
    with pytest.raises(KeyError, match='missing keys'):
        build(MNV2, pretrained_path=pth)
    with pytest.raises(FileNotFoundError):
        build(MNV2, pretrained_path=str(tmp_path / 'nope.pth'))


def test_config_errors():
    with pytest.raises(ValueError, match='rank must be a positive int'):
        build(MNV2, dict(type='ModulationAdapter', rank=0))
    with pytest.raises(ValueError, match="norm='group'"):
        build(MNV2, dict(type='ModulationAdapter', norm='group'))
    with pytest.raises(ValueError, match='strides'):
        build(MNV2, out_indices=(0, 1, 2, 3))
    with pytest.raises(ValueError, match='pretrained'):
        build(MNV2, pretrained=True)
    bb = build(MNV2)
    with pytest.raises(KeyError, match='subset'):
        bb(images(size=32), tasks=['edge'])


def test_state_dict_keys_are_timm_keys_plus_method():
    bb = build(MNV2)
    base = timm.create_model(MNV2, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    keys = set(bb.state_dict())
    model_keys = {k[len('model.'):] for k in keys if k.startswith('model.')}
    assert model_keys == set(base.state_dict())
    assert all(k.startswith(('model.', 'method.')) for k in keys)
    assert any(isinstance(m, ConvSlot) for m in bb.model.modules())
    assert any(isinstance(m, NormSlot) for m in bb.model.modules())
    clone = copy.deepcopy(bb)  # slots must follow their (copied) method
    x = images(size=32)
    with torch.no_grad():
        perturb(clone.method)
        a, b = bb.eval()(x), clone.eval()(x)
    assert not torch.allclose(a['semseg'][3], b['semseg'][3])


# --------------------------------------------------------- dense multi-task model
def dense_batch(size=32, n=2, num_classes=4):
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(n):
        img = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
        s = MultiTaskDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        bright = img.float().mean(0, keepdim=True)
        s.set_gt('semseg', (bright / 256 * num_classes).long().clamp(max=num_classes - 1))
        s.set_gt('depth', 1 + bright / 64)
        inputs.append(img)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('method', [dict(type='ModulationAdapter', rank=2),
                                    dict(type='DepthwiseSharing', gate=True)])
def test_multitask_dense_model_trains(method):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiTaskDenseModel',
        backbone=dict(type='ConvMultiTaskBackbone', backbone=dict(model_name=MNV2),
                      method=method),
        tasks=['semseg', 'depth'], heads=dict(type='LightMultiScaleHead', channels=16),
        num_classes=4))
    report = model.parameter_report()
    assert report['backbone_report']['method'] == method['type']
    assert report['backbone_trainable'] == report['backbone_report']['trainable']
    optim = OptimWrapper(torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                          lr=1e-2))
    batch = dense_batch()
    base_before = copy.deepcopy(model.backbone.model.state_dict())
    history = [model.train_step(copy.deepcopy(batch), optim) for _ in range(8)]
    assert history[-1]['loss'].item() < 0.85 * history[0]['loss'].item(), (history[0], history[-1])
    after = model.backbone.model.state_dict()
    # the frozen base network (weights and BN statistics) did not move
    assert all(torch.equal(after[k], v) for k, v in base_before.items())
    model.eval()
    with torch.no_grad():
        preds = model.test_step(copy.deepcopy(batch))
    assert preds[0].pred_semseg.data.shape == (1, 32, 32)
    assert (preds[0].pred_depth.data > 0).all()


@pytest.mark.parametrize('method', [dict(type='ModulationAdapter', rank=2),
                                    dict(type='DepthwiseSharing', gate=True)])
def test_deepcopy_computes_with_the_copy(method):
    """copy.deepcopy (EMA, model soups): the copy's convs use the copy's task parameters."""
    bb = build(method=method)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in bb.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    clone = copy.deepcopy(bb)
    out = clone(images())
    sum(f.square().mean() for t in out for f in out[t]).backward()
    for (n, p), q in zip(bb.named_parameters(), clone.parameters()):
        assert p.grad is None, n
        assert (q.grad is not None) == q.requires_grad, n
