"""The FLOP count is what runs: the jit trace and the dispatcher agree for every method.

For every PETL method registered in mtdense (and the variants that change what is
computed) on every host, and for the conv seed methods, one tiny model is counted
twice by ``count_model_flops``: as executed (``FlopCounterMode`` at the dispatcher,
mtdense's formulas for what it does not count itself) and traced (mmengine's
``FlopAnalyzer`` with mtdense's handles). Per category (products: linear / matmul /
conv / attention; norms; resampling: upsampling, pooling, means) they must agree
exactly, except for work that is known to run and be discarded, accounted for here
with its exact size. Neither side may leave an operator that can carry multiply-adds
uncounted.
"""
import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import pytest
import torch

from mtdense.analysis.flops import count_executed_flops, count_module_flops, flop_category
from mtdense.analysis.flops import count_model_flops
from mtdense.models.petl import BasePEFTMethod
from mtdense.models.petl import ConvTaskMethod
from mtdense.registry import MODELS
from mtdense.utils import register_all_modules

register_all_modules()

TASKS = ['semseg', 'normals']
HOSTS = {
    'mmseg_swin': dict(type='MMSegSwin', embed_dims=16, depths=(2, 1, 2, 1), num_heads=(1, 1, 2, 2),
                       window_size=4),
    'timm_swin': dict(type='TimmSwin', img_size=64, embed_dim=16, depths=(2, 1, 2, 1),
                      num_heads=(1, 1, 2, 2), window_size=4),
    'mmseg_vit': dict(type='MMSegViT', img_size=64, patch_size=16, embed_dims=16, num_layers=4,
                      num_heads=2, final_norm=True),
    'timm_vit': dict(type='TimmViT', img_size=64, embed_dim=16, depth=4, num_heads=2),
}
SIZE = 64

# Every registered PETL method, plus variants that change the computation.
PEFT_METHODS = sorted(n for n, c in MODELS.module_dict.items()
                      if isinstance(c, type) and issubclass(c, BasePEFTMethod))
VARIANTS = {
    'MTLoRA-matrixv2': dict(type='MTLoRA', mode='matrixv2'),
    'MTLoRA-lora_only': dict(type='MTLoRA', mode='lora_only'),
    'VMTAdapter-lowrank': dict(type='VMTAdapter', kem='lowrank'),
    'VMTAdapter-none': dict(type='VMTAdapter', kem='none'),
}
CONV_METHODS = {
    'ModulationAdapter': dict(type='ModulationAdapter', rank=2),
    'ModulationAdapter-frozen': dict(type='ModulationAdapter', rank=2, norm='frozen'),
    'DepthwiseSharing': dict(type='DepthwiseSharing', gate=True),
    'DepthwiseSharing-nogate': dict(type='DepthwiseSharing', gate=False),
}
# Trace-side operators without a handle that carry no multiply-adds.
ELEMENTWISE = {'aten::add', 'aten::sub', 'aten::rsub', 'aten::mul', 'aten::div', 'aten::neg',
               'aten::sqrt', 'aten::gelu', 'aten::softmax', 'aten::hardtanh_',
               'aten::index_select', 'aten::repeat_interleave', 'aten::relu', 'aten::sigmoid'}


def _model(backbone: dict):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='MultiTaskDenseModel', tasks=TASKS, num_classes=5, backbone=backbone,
             heads=dict(type='LightMultiScaleHead', channels=8)))


def _mha_images(model) -> int:
    """Images seen by all ``nn.MultiheadAttention`` calls of one forward (layers x streams
    x batch), read from the calls themselves."""
    seen, hooks = [], []
    for m in model.modules():
        if isinstance(m, torch.nn.MultiheadAttention):
            def hook(mod, args, kwargs, out):
                q = args[0] if args else kwargs['query']
                seen.append(q.shape[0 if mod.batch_first else 1])

            hooks.append(m.register_forward_hook(hook, with_kwargs=True))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, SIZE, SIZE), mode='tensor')
    for h in hooks:
        h.remove()
    return sum(seen)


def _known_discarded(method: str, host: str, model) -> dict:
    """Work that runs and is not used, per category (the trace drops it).

    * mmseg ViT: mmcv's ``MultiheadAttention`` calls torch's with ``need_weights=True``,
      which also averages the attention weights over the heads (a mean over heads x L x L
      per layer, 1 per element); mmseg keeps only the attention output.
    * VMT (vmt_adapter.py) takes every level from the host's own forward, then replaces
      the tapped ones by its task maps: the output norms the host applied to those shared
      maps ran for nothing (mmseg Swin: norm{i} on every level; mmseg ViT: the final norm,
      class token included, on the last level); 5 per element.
    """
    out = {}
    if host == 'mmseg_vit':
        vit = HOSTS[host]
        tokens = 1 + (SIZE // vit['patch_size']) ** 2
        # heads x L x L per image and layer, for every stream the method runs
        out['resampling'] = vit['num_heads'] * tokens * tokens * _mha_images(model)
    if method.startswith('VMTAdapter') and not method.endswith('-none'):
        if host == 'mmseg_swin':
            elems = sum(c * (SIZE // s) ** 2
                        for c, s in zip(model.backbone.out_channels, (4, 8, 16, 32)))
            out['norms'] = 5 * elems
        if host == 'mmseg_vit':
            out['norms'] = 5 * HOSTS[host]['embed_dims'] * tokens
    return out


def _check(counts: dict, discarded: dict) -> None:
    diff = counts['executed_minus_traced']
    assert diff == {cat: discarded.get(cat, 0) for cat in diff}, diff
    assert counts['uncounted_ops'] == {}  # executed, unformulated, may carry MACs
    assert set(counts['traced']['uncounted_ops']) <= ELEMENTWISE, counts['traced']['uncounted_ops']
    assert counts['by_category'].get('other', 0) == 0
    assert counts['total'] == sum(counts['by_category'].values())


def _cases():
    for name in PEFT_METHODS + sorted(VARIANTS):
        for host in HOSTS:
            if name.startswith('MTLoRA') and 'vit' in host:
                continue  # no patch merging: MTLoRA refuses ViT hosts (test_mtlora.py)
            yield name, host


@pytest.mark.parametrize('method,host', list(_cases()))
def test_traced_equals_executed_for_every_method(method, host):
    peft = VARIANTS.get(method, dict(type=method))
    model = _model(dict(type='AdaptedBackbone', backbone=HOSTS[host], peft=peft))
    counts = count_model_flops(model, SIZE)
    _check(counts, _known_discarded(method, host, model))
    assert counts['total'] == counts['backbone'] + counts['heads'] + counts['other']
    assert counts['heads_per_task'] == counts['traced']['heads_per_task']


@pytest.mark.parametrize('method', sorted(CONV_METHODS))
def test_traced_equals_executed_for_the_conv_seed_methods(method):
    assert issubclass(MODELS.get(CONV_METHODS[method]['type']), ConvTaskMethod)
    model = _model(dict(type='ConvMultiTaskBackbone', method=CONV_METHODS[method],
                        backbone=dict(model_name='mobilenetv2_100')))
    _check(count_model_flops(model, SIZE), {})


def test_every_registered_method_is_covered():
    conv = sorted(n for n, c in MODELS.module_dict.items()
                  if isinstance(c, type) and issubclass(c, ConvTaskMethod))
    assert conv == sorted({v['type'] for v in CONV_METHODS.values()})
    assert {'MTLoRA', 'VMTAdapter', 'PerTaskLoRA', 'FullFineTune'} <= set(PEFT_METHODS)


def test_a_discarded_result_is_executed_but_not_traced():
    """Why the reported count is the executed one: the trace drops unused work."""

    class Wasteful(torch.nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = torch.nn.Linear(8, 4), torch.nn.Linear(8, 16)

        def forward(self, x):
            self.unused(x)  # computed, then discarded
            return self.used(x)

    x = torch.randn(3, 8)
    assert count_module_flops(Wasteful(), (x, ))['total'] == 3 * 8 * 4
    assert count_executed_flops(Wasteful(), (x, ))['total'] == 3 * 8 * (4 + 16)


def test_executed_formulas_follow_the_trace_conventions():
    """Ops FlopCounterMode does not count itself, one by one, against mmengine's handles."""
    import torch.nn.functional as F

    class Ops(torch.nn.Module):

        def __init__(self) -> None:
            super().__init__()
            self.ln, self.gn, self.bn = (torch.nn.LayerNorm(6), torch.nn.GroupNorm(2, 4),
                                         torch.nn.BatchNorm2d(4))

        def forward(self, a, m, v, img, q):
            return (self.ln(a), m @ v, self.gn(img), self.bn(img),
                    F.interpolate(img, size=(10, 12), mode='bilinear'),
                    F.interpolate(img, scale_factor=2, mode='nearest'),
                    F.adaptive_avg_pool2d(img, 1),
                    F.scaled_dot_product_attention(q, q, q, attn_mask=torch.zeros(1, 1, 5, 5)),
                    torch.einsum('btc,tch->bth', a[:, :2], torch.ones(2, 6, 3)))

    args = (torch.randn(3, 4, 6), torch.randn(7, 5), torch.randn(5), torch.randn(2, 4, 5, 6),
            torch.randn(2, 3, 5, 8))
    mod = Ops().eval()
    executed = count_executed_flops(mod, args)
    traced = count_module_flops(mod, args)
    assert executed['unformulated_ops'] == {}
    assert executed['total'] == traced['total']
    for cat in ('products', 'norms', 'resampling'):
        assert sum(n for op, n in executed['by_operator'].items() if flop_category(op) == cat) == \
            sum(n for op, n in traced['by_operator'].items() if flop_category(op) == cat), cat
    # the conventions themselves
    assert executed['by_operator']['aten.native_layer_norm'] == 5 * 3 * 4 * 6
    assert executed['by_operator']['aten.mv'] == 7 * 5
    assert executed['by_operator']['aten.upsample_bilinear2d'] == 4 * 2 * 4 * 10 * 12
    assert executed['by_operator']['aten._scaled_dot_product_flash_attention_for_cpu'] == \
        2 * 3 * 5 * 5 * (8 + 8)
    assert executed['by_operator']['aten.upsample_nearest2d'] == 2 * 4 * 10 * 12
    assert executed['by_operator']['aten.mean'] == traced['by_operator']['adaptive_avg_pool2d'] \
        == 2 * 4 * 5 * 6  # a pooling to 1 x 1 runs as a mean
    assert traced['by_operator']['einsum'] == 3 * 2 * 6 * 3  # exact, not numpy's estimate


@pytest.mark.parametrize('equation,shapes,macs', [
    ('btc,tch->bth', [(2, 3, 5), (3, 5, 4)], 2 * 3 * 5 * 4),
    ('ij,jk->i', [(3, 4), (4, 5)], 3 * 4),  # k is summed out of the second operand first
    ('bij,bjk->bik', [(1, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),  # broadcast batch
    ('ij,jk,kl->il', [(3, 4), (4, 5), (5, 6)], 3 * 4 * 5 + 3 * 5 * 6),  # pairwise, in order
    ('ij->j', [(3, 4)], 0),  # a reduction, no multiply-adds
])
def test_einsum_handle_is_exact(equation, shapes, macs):

    class Einsum(torch.nn.Module):

        def forward(self, *ops):
            return torch.einsum(equation, *ops)

    ops = tuple(torch.randn(*s) for s in shapes)
    assert count_module_flops(Einsum(), ops)['total'] == macs
    assert count_executed_flops(Einsum(), ops)['total'] == macs
