"""FLOP counting of multi-task dense models: what runs, cross-checked by a trace.

Conventions (those of fvcore / mmengine): one fused multiply-add counts as one
FLOP (i.e. the numbers are MACs); linear / matmul / bmm / einsum / conv / attention
count their MACs, norms 5 per element (4 without affine; 2 / 1 for an inference
BatchNorm), bilinear upsampling 4 per output element, nearest 1, average pooling
and means 1 per input element; element-wise ops (activations, additions, the VMT
scale-and-shift KEMs) are not counted.

Two independent counters with these conventions:

* **executed** (:func:`count_executed_flops`): ``torch.utils.flop_counter.FlopCounterMode``
  at the dispatcher, so every operator that runs is seen, whether its result is used
  or not; its own formulas count 2 per MAC of mm / addmm / bmm / baddbmm / conv /
  registered SDPA kernels, and mtdense adds formulas for what it does not see
  (matrix-vector products, the CPU flash-attention kernel, norms, resampling);
* **traced** (:func:`count_module_flops`): mmengine's ``FlopAnalyzer`` on the jit
  trace with :data:`EXTRA_FLOP_HANDLES`. A traced graph keeps only what the outputs
  depend on: work whose result is discarded is dropped, so the trace undercounts a
  forward that computes something it does not use.

:func:`count_model_flops` reports the executed count (split into the backbone side:
backbone + PETL method + neck, everything under ``model.backbone``; the task heads;
the rest: the model's upsampling of each head output to the input size) and the
trace beside it, with their difference per category (``products``, ``norms``,
``resampling``). tests/analysis/test_flop_crosscheck.py requires them to agree for every
method except work a method is known to discard (listed there with its exact size).

Handles replaced or added on top of mmengine's defaults for the trace:

* ``aten::matmul``: mmengine's handle multiplies the first operand's size by the
  last dim of the second and so undercounts broadcasting products such as
  (1, M, r) @ (T, r, k); ours counts the broadcast batch.
* ``aten::einsum``: mmengine parses numpy's printed (rounded) estimate; ours is
  exact (pairwise contraction MACs, as torch runs it).
* ``aten::mean``: 1 per input element, as mmengine counts ``adaptive_avg_pool2d``
  (at the dispatcher a pooling to 1 x 1 *is* a mean);
* ``aten::scaled_dot_product_attention`` (timm's fused attention), ``aten::baddbmm``
  and ``aten::addbmm`` are counted instead of being reported as unsupported.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['count_model_flops', 'count_module_flops', 'count_executed_flops', 'flop_category',
           'EXTRA_FLOP_HANDLES', 'TensorForward']

# Ops that carry no multiply-adds worth counting; silenced so the report's
# ``uncounted_ops`` only lists ops that may hide real cost.
_SHAPE_OPS = (
    'aten::view', 'aten::reshape', 'aten::permute', 'aten::transpose', 'aten::contiguous',
    'aten::size', 'aten::flatten', 'aten::unflatten', 'aten::unsqueeze', 'aten::squeeze',
    'aten::expand', 'aten::expand_as', 'aten::slice', 'aten::select', 'aten::unbind',
    'aten::chunk', 'aten::split', 'aten::cat', 'aten::stack', 'aten::repeat', 'aten::t',
    'aten::numpy_T', 'aten::to', 'aten::detach', 'aten::clone', 'aten::zeros', 'aten::ones',
    'aten::empty', 'aten::new_zeros', 'aten::new_ones', 'aten::copy_', 'aten::fill_',
    'aten::Int', 'aten::ScalarImplicit', 'aten::dropout', 'aten::feature_dropout',
    'aten::constant_pad_nd', 'aten::pad', 'aten::roll', 'aten::arange', 'aten::index',
    'aten::masked_fill', 'aten::alias', 'aten::lift_fresh', 'aten::narrow', 'aten::zeros_like',
    'aten::ones_like', 'aten::full', 'aten::full_like', 'aten::as_strided', 'aten::type_as',
    'aten::linspace', 'aten::meshgrid', 'aten::eq', 'aten::ne', 'aten::scalar_tensor',
    'aten::floor_divide', 'aten::remainder', 'aten::max_pool2d', 'aten::tensor',
    'prim::PythonOp.Identity', 'aten::identity', 'aten::im2col', 'aten::col2im',
)


def _shape(val: Any) -> Optional[List[int]]:
    return val.type().sizes() if val.isCompleteTensor() else None


def _prod(values: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in values))


def matmul_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::matmul`` with numpy broadcasting of the batch dims."""
    a, b = _shape(inputs[0]), _shape(inputs[1])
    if a is None or b is None:
        raise ValueError('matmul_flop_jit: operand shapes unknown in the trace')
    a = [1, a[0]] if len(a) == 1 else list(a)
    b = [b[0], 1] if len(b) == 1 else list(b)
    if a[-1] != b[-2]:
        raise ValueError(f'matmul_flop_jit: inner dims differ in {a} @ {b}')
    batch = list(torch.broadcast_shapes(torch.Size(a[:-2]), torch.Size(b[:-2])))
    return _prod(batch) * a[-2] * a[-1] * b[-1]


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: Q K^T and A V."""
    q, k, v = (_shape(x) for x in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError('sdpa_flop_jit: q/k/v shapes unknown in the trace')
    batch = list(torch.broadcast_shapes(torch.Size(q[:-2]), torch.Size(k[:-2])))
    length, dim, keys, vdim = q[-2], q[-1], k[-2], v[-1]
    return _prod(batch) * length * keys * (dim + vdim)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``aten::baddbmm`` / ``aten::addbmm`` (the product, not the add)."""
    x, y = _shape(inputs[1]), _shape(inputs[2])
    if x is None or y is None:
        raise ValueError('baddbmm_flop_jit: operand shapes unknown in the trace')
    return _prod(x) * y[-1]


def _einsum_pair_macs(a: str, b: str, keep: set, sizes: Dict[str, int]) -> Tuple[int, str]:
    """MACs of contracting operands with index strings a, b and the kept indices."""
    # an index in only one operand and not kept is summed out before the product
    used = [c for c in dict.fromkeys(a + b) if (c in a and c in b) or c in keep]
    out = ''.join(c for c in used if c in keep)
    return _prod(sizes[c] for c in used), out


def einsum_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Exact MACs of ``aten::einsum`` (pairwise, in operand order).

    Replaces mmengine's handle, which parses numpy's *printed* FLOP estimate (3-4
    significant digits: 12290 instead of 12288 MACs).
    """
    equation = inputs[0].toIValue().replace(' ', '')
    shapes = [_shape(v) for v in inputs[1].node().inputs()]
    if '...' in equation or '->' not in equation or any(s is None for s in shapes):
        raise ValueError(f'einsum_flop_jit: unsupported equation {equation!r} or unknown shapes')
    lhs, result = equation.split('->')
    terms = lhs.split(',')
    sizes: Dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for c, n in zip(term, shape):
            sizes[c] = max(sizes.get(c, 1), int(n))  # a size-1 index broadcasts
    total, acc = 0, terms[0]
    for i, term in enumerate(terms[1:], start=1):
        later = set(result) | set(''.join(terms[i + 1:]))
        macs, acc = _einsum_pair_macs(acc, term, later, sizes)
        total += macs
    return total


def mean_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``aten::mean``: 1 per input element, like ``adaptive_avg_pool2d`` (an average
    pooling to 1 x 1 runs as a mean)."""
    shape = _shape(inputs[0])
    if shape is None:
        raise ValueError('mean_flop_jit: input shape unknown in the trace')
    return _prod(shape)


#: Handles added to / replacing mmengine's defaults (see module docstring).
EXTRA_FLOP_HANDLES = {
    'aten::einsum': einsum_flop_jit,
    'aten::mean': mean_flop_jit,
    'aten::matmul': matmul_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::addbmm': baddbmm_flop_jit,
}


# ------------------------------------------------------------------ categories
# Operator names as the trace reports them (``by_operator`` keys) and as the dispatcher
# runs them (``aten.<name>``), grouped so the two counts can be compared.
_CATEGORIES = {
    'products': (
        # traced
        'linear', 'matmul', 'mm', 'addmm', 'bmm', 'baddbmm', 'addbmm', 'einsum', 'conv',
        'scaled_dot_product_attention',
        # executed
        'addmv', 'mv', 'dot', 'convolution', '_convolution',
        '_scaled_dot_product_efficient_attention', '_scaled_dot_product_flash_attention',
        '_scaled_dot_product_cudnn_attention', '_scaled_dot_product_flash_attention_for_cpu'),
    'norms': ('layer_norm', 'group_norm', 'batch_norm', 'instance_norm', 'native_layer_norm',
              'native_group_norm', 'native_batch_norm', '_native_batch_norm_legit',
              '_native_batch_norm_legit_no_training'),
    'resampling': ('upsample_bilinear2d', 'upsample_nearest2d', 'adaptive_avg_pool2d',
                   '_adaptive_avg_pool2d', 'mean', 'grid_sampler', 'grid_sampler_2d'),
}
_CATEGORY_OF = {op: cat for cat, ops in _CATEGORIES.items() for op in ops}


def flop_category(op: str) -> str:
    """'products' | 'norms' | 'resampling' for a traced (``'linear'``) or executed
    (``'aten.addmm'``) operator name; 'other' for anything else."""
    name = op.split('.')[1] if op.startswith('aten.') else op.replace('aten::', '')
    return _CATEGORY_OF.get(name, 'other')


def _by_category(by_operator: Dict[str, int]) -> Dict[str, int]:
    out = {cat: 0 for cat in _CATEGORIES}
    for op, n in by_operator.items():
        cat = flop_category(op)
        out[cat] = out.get(cat, 0) + int(n)
    return out


# ------------------------------------------------------- executed (dispatcher)
# FlopCounterMode counts 2 FLOPs per multiply-add of mm / addmm / bmm / baddbmm /
# convolution and its registered SDPA kernels. The formulas below add what it does not
# see, in the same unit (2 per counted operation of the mmengine convention), so that
# half its total is directly comparable with the trace: matrix-vector products, the CPU
# flash-attention kernel, norms (5 per element, 4 without affine; inference BN 2 / 1),
# bilinear (4 per output element) / nearest (1) upsampling and adaptive average
# pooling (1 per input element).

def _mv_flop(a, b, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(a)


def _addmv_flop(bias, a, b, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(a)


def _dot_flop(a, b, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(a)


def _sdpa_cpu_flop(q, k, v, *args, out_shape=None, **kwargs) -> int:
    batch = _prod(torch.broadcast_shapes(torch.Size(q[:-2]), torch.Size(k[:-2])))
    return 2 * batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _layer_norm_flop(x, normalized_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(x) * (5 if weight is not None else 4)


def _group_norm_flop(x, weight=None, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(x) * (5 if weight is not None else 4)


def _batch_norm_flop(x, weight, bias, mean, var, training, *args, out_shape=None,
                     **kwargs) -> int:
    if training:
        return 2 * _prod(x) * (5 if weight is not None else 4)
    return 2 * _prod(x) * (2 if weight is not None else 1)


def _batch_norm_eval_flop(x, weight, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(x) * (2 if weight is not None else 1)


def _upsample_bilinear_flop(x, *args, out_shape=None, **kwargs) -> int:
    return 2 * 4 * _prod(out_shape)


def _upsample_nearest_flop(x, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(out_shape)


def _pool_flop(x, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(x)


def _executed_formulas() -> Dict[Any, Any]:
    aten = torch.ops.aten
    table = {
        'mv': _mv_flop, 'addmv': _addmv_flop, 'dot': _dot_flop,
        '_scaled_dot_product_flash_attention_for_cpu': _sdpa_cpu_flop,
        'native_layer_norm': _layer_norm_flop, 'native_group_norm': _group_norm_flop,
        'native_batch_norm': _batch_norm_flop, '_native_batch_norm_legit': _batch_norm_flop,
        '_native_batch_norm_legit_no_training': _batch_norm_eval_flop,
        'upsample_bilinear2d': _upsample_bilinear_flop,
        'upsample_nearest2d': _upsample_nearest_flop,
        '_adaptive_avg_pool2d': _pool_flop, 'adaptive_avg_pool2d': _pool_flop,
        'mean': _pool_flop,
    }
    out = {}
    for name, fn in table.items():
        if not hasattr(aten, name):
            continue
        packet = getattr(aten, name)
        out[packet] = fn
        # FlopCounterMode decomposes an overload that is not itself a key before looking
        # at its packet: composite ops (nearest upsampling, adaptive pooling) would be
        # counted as their decompositions (indexing, mean), i.e. not at all
        for overload in packet.overloads():
            out[getattr(packet, overload)] = fn
    return out


# Executed operators with no formula that carry no multiply-adds (element-wise, shape,
# memory, reductions over one tensor); any other unformulated operator is reported.
_ZERO_COST_EXECUTED = frozenset((
    'add', 'add_', 'sub', 'sub_', 'rsub', 'mul', 'mul_', 'div', 'div_', 'neg', 'sqrt',
    'rsqrt', 'pow', 'exp', 'log', 'abs', 'clamp', 'clamp_', 'clamp_min', 'clamp_max',
    'hardtanh', 'hardtanh_', 'relu', 'relu_', 'gelu', 'silu', 'sigmoid', 'tanh', 'softplus',
    '_softmax', 'softmax', 'sum', 'amax', 'max', 'where', 'masked_fill',
    'masked_fill_', 'fill_', 'zero_', 'copy_', 'clone', 'view', '_unsafe_view', 'reshape',
    'permute', 'transpose', 't', 'expand', 'unsqueeze', 'squeeze', 'slice', 'select', 'cat',
    'stack', 'split', 'split_with_sizes', 'unbind', 'chunk', 'narrow', 'roll', 'repeat',
    'repeat_interleave', 'index_select', 'index', 'gather', 'constant_pad_nd', 'pad',
    'as_strided', 'contiguous', 'detach', 'alias', 'empty', 'empty_like', 'empty_strided',
    'zeros', 'zeros_like', 'ones', 'ones_like', 'full', 'full_like', 'new_zeros', 'new_empty',
    'new_ones', 'new_full', 'arange', 'linspace', 'lift_fresh', '_to_copy', 'to', 'eq', 'ne',
    'lt', 'gt', 'le', 'ge', 'bitwise_not', 'logical_not', 'im2col', 'col2im', 'bernoulli_',
    'uniform_', 'native_dropout', 'dropout', 'floor_divide', 'remainder', 'scalar_tensor',
    'sym_size', 'sym_stride', 'sym_numel', 'is_same_size', 'unfold', 'flatten',
    'unflatten', 'native_layer_norm_backward', 'max_pool2d_with_indices', 'erf', 'hardswish',
    'hardsigmoid', 'leaky_relu', 'elu', 'mish', 'topk', 'sort', 'argmax', 'cumsum',
))


def count_executed_flops(module: nn.Module, inputs: tuple,
                         scopes: Sequence[str] = ()) -> Dict[str, Any]:
    """Operations of one ``module(*inputs)`` call as executed, mmengine's conventions.

    Counted by ``FlopCounterMode`` at the dispatcher (every operator that runs, used or
    not) with the formulas above for what it does not count itself. Returns ``total``,
    ``by_operator`` (``'aten.<op>'`` -> count), ``by_category`` (see
    :func:`flop_category`), ``by_scope`` (the total inside each submodule named in
    ``scopes``, names relative to ``module``) and ``unformulated_ops``: operators that
    ran without a formula and are not known to be free of multiply-adds (op -> calls).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    seen: Counter = Counter()

    class _Ops(TorchDispatchMode):

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    counter = FlopCounterMode(display=False, custom_mapping=_executed_formulas())
    with torch.no_grad(), counter, _Ops():
        module(*inputs)
    counts = counter.get_flop_counts()
    by_op = {f'aten.{op.__name__}': int(n) // 2 for op, n in counts.get('Global', {}).items()}
    # FlopCounterMode names submodules '<root class>.<path>'
    root = type(module).__name__
    by_scope = {sc: int(sum(counts.get(f'{root}.{sc}', {}).values())) // 2 for sc in scopes}
    formulated = {op.__name__ for op in counter.flop_registry}
    unformulated = {op: n for op, n in sorted(seen.items())
                    if op not in formulated and op not in _ZERO_COST_EXECUTED}
    return dict(total=int(sum(by_op.values())), by_operator=dict(sorted(by_op.items())),
                by_category=_by_category(by_op), by_scope=by_scope,
                unformulated_ops=unformulated)


class TensorForward(nn.Module):
    """Traceable view of a ``MultiTaskDenseModel``: ``x -> tuple of task outputs``.

    Registered as the only child ``model`` so module names in the analysis are
    ``model.backbone...`` / ``model.heads...``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor):
        outs = self.model(x, mode='tensor')
        return tuple(outs[t] for t in self.model.tasks)


def _analyzer(module: nn.Module, inputs: tuple):
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.set_op_handle(**EXTRA_FLOP_HANDLES)
    analyzer.set_op_handle(**{op: None for op in _SHAPE_OPS})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def count_module_flops(module: nn.Module, inputs: tuple) -> Dict[str, Any]:
    """Traced FLOPs (MACs) of ``module(*inputs)`` plus per-operator counts (what the jit
    graph keeps; see the module docstring)."""
    analyzer = _analyzer(module, inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        total = int(analyzer.total())
    return dict(total=total,
                by_operator={k: int(v) for k, v in sorted(analyzer.by_operator().items())},
                uncounted_ops=dict(sorted(Counter(analyzer.unsupported_ops()).items())))


def _split_by_module(analysis: Dict[str, int], model: nn.Module, total: int) -> Dict[str, Any]:
    backbone = int(analysis.get('model.backbone', 0))
    heads_per_task = {t: int(analysis.get(f'model.heads.{t}', 0)) for t in model.tasks}
    heads = sum(heads_per_task.values())
    return dict(total=total, backbone=backbone, heads=heads, heads_per_task=heads_per_task,
                other=total - backbone - heads)


def count_model_flops(model: nn.Module, img_size: int, batch_size: int = 1,
                      device: str = 'cpu', cross_check: bool = True) -> Dict[str, Any]:
    """FLOPs (mmengine's conventions, module docstring) of one ``mode='tensor'`` forward
    of a ``MultiTaskDenseModel``, counted as executed.

    Returns ``total``, ``backbone`` (backbone + PETL method + neck: everything under
    ``model.backbone``), ``heads`` (sum over tasks), ``heads_per_task``, ``other`` (the
    upsampling to the input size), ``by_operator`` (``'aten.<op>'``), ``by_category``
    and ``uncounted_ops`` (operators that ran without a formula and may carry
    multiply-adds). Counts are for ``batch_size`` images.

    With ``cross_check`` the forward is also traced (mmengine ``FlopAnalyzer`` with
    :data:`EXTRA_FLOP_HANDLES`): ``traced`` holds the same fields from the trace (op
    names as the trace reports them) and ``executed_minus_traced`` the per-category
    difference; non-zero means the forward computes something it does not use (the
    trace drops it) or a handle and a formula disagree.
    """
    if not hasattr(model, 'heads') or not hasattr(model, 'backbone'):
        raise TypeError(f'count_model_flops: expected a MultiTaskDenseModel, got '
                        f'{type(model).__name__}')
    was_training = model.training
    was_batched = getattr(model, 'batch_heads', None)
    model.eval()
    if was_batched is not None:
        # Count on the per-task head path: the same multiply-adds as the task-batched
        # one, but inside ``model.heads.<task>`` so the split per task works.
        model.batch_heads = False
    wrapper = TensorForward(model)
    x = torch.randn(batch_size, 3, img_size, img_size, device=device)
    scopes = ['model.backbone'] + [f'model.heads.{t}' for t in model.tasks]
    traced = None
    try:
        executed = count_executed_flops(wrapper, (x, ), scopes=scopes)
        if cross_check:
            analyzer = _analyzer(wrapper, (x, ))
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter('ignore')
                t_total = int(analyzer.total())
                t_scopes = {sc: int(analyzer.total(sc)) for sc in scopes}
                t_by_op = {k: int(v) for k, v in sorted(analyzer.by_operator().items())}
                t_uncounted = dict(sorted(Counter(analyzer.unsupported_ops()).items()))
            traced = _split_by_module(t_scopes, model, t_total)
            traced.update(by_operator=t_by_op, by_category=_by_category(t_by_op),
                          uncounted_ops=t_uncounted)
    finally:
        model.train(was_training)
        if was_batched is not None:
            model.batch_heads = was_batched
    out = _split_by_module(executed['by_scope'], model, executed['total'])
    out.update(by_operator=executed['by_operator'], by_category=executed['by_category'],
               uncounted_ops=executed['unformulated_ops'], batch_size=batch_size)
    if traced is not None:
        out['traced'] = traced
        out['executed_minus_traced'] = {
            cat: out['by_category'][cat] - traced['by_category'].get(cat, 0)
            for cat in out['by_category']
        }
    return out
