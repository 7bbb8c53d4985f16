"""FLOP counting of multi-task dense models with mmengine's ``FlopAnalyzer``.

Conventions (those of fvcore / mmengine): one fused multiply-add counts as one
FLOP (i.e. the numbers are MACs); linear / matmul / bmm / einsum / conv count
their MACs, norms ~5 per element, bilinear upsampling 4 per output element;
element-wise ops (activations, additions, the VMT scale-and-shift KEMs) are not
counted. ``count_model_flops`` splits the total into the backbone side
(backbone + PETL method + neck: everything under ``model.backbone``), the task
heads (``model.heads``) and the rest (the model's upsampling of each head
output to the input size), and lists the operators that were *not* counted.

Two handles are replaced or added on top of mmengine's defaults:

* ``aten::matmul``: mmengine's handle multiplies the first operand's size by the
  last dim of the second and so undercounts broadcasting products such as
  (1, M, r) @ (T, r, k); ours counts the broadcast batch.
* ``aten::scaled_dot_product_attention`` (timm's fused attention), ``aten::baddbmm``
  and ``aten::addbmm`` are counted instead of being reported as unsupported.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['count_model_flops', 'count_module_flops', 'EXTRA_FLOP_HANDLES', 'TensorForward']

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


#: Handles added to / replacing mmengine's defaults (see module docstring).
EXTRA_FLOP_HANDLES = {
    'aten::matmul': matmul_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    'aten::addbmm': baddbmm_flop_jit,
}


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
    """Total FLOPs (MACs) of ``module(*inputs)`` plus per-operator counts."""
    analyzer = _analyzer(module, inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        total = int(analyzer.total())
    return dict(total=total,
                by_operator={k: int(v) for k, v in sorted(analyzer.by_operator().items())},
                uncounted_ops=dict(sorted(Counter(analyzer.unsupported_ops()).items())))


def count_model_flops(model: nn.Module, img_size: int, batch_size: int = 1,
                      device: str = 'cpu') -> Dict[str, Any]:
    """FLOPs of one ``mode='tensor'`` forward of a ``MultiTaskDenseModel``.

    Returns a dict with ``total``, ``backbone`` (backbone + PETL method + neck),
    ``heads`` (sum over tasks), ``heads_per_task``, ``other`` (upsampling to the
    input size), ``by_operator`` and ``uncounted_ops`` (op name -> number of calls
    without a FLOP handle). Counts are for ``batch_size`` images.
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
    analyzer = _analyzer(wrapper, (x,))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            total = int(analyzer.total())
            backbone = int(analyzer.total('model.backbone'))
            heads_per_task = {t: int(analyzer.total(f'model.heads.{t}')) for t in model.tasks}
            by_op = {k: int(v) for k, v in sorted(analyzer.by_operator().items())}
            uncounted = dict(sorted(Counter(analyzer.unsupported_ops()).items()))
    finally:
        model.train(was_training)
        if was_batched is not None:
            model.batch_heads = was_batched
    heads = sum(heads_per_task.values())
    return dict(total=total, backbone=backbone, heads=heads, heads_per_task=heads_per_task,
                other=total - backbone - heads, by_operator=by_op, uncounted_ops=uncounted,
                batch_size=batch_size)
