"""FLOPs versus number of tasks, counted with mmengine's FlopAnalyzer (not timed).

mmengine counts multiply-accumulates of linear/matmul/bmm/einsum/conv and ~5 per
element for LayerNorm; element-wise ops are ignored. The mmseg Swin is used
because its attention is explicit matmuls. mtdense adds handles for the ops
mmengine leaves uncounted (``baddbmm``, which fuses VMT's task product with its
add; broadcasting ``matmul``; fused SDPA): ``EXTRA_FLOP_HANDLES``.
"""
import mtdense  # noqa: F401,I001  (first: installs the mmcv.ops stand-in mmseg needs)
import torch
from mmengine.analysis import FlopAnalyzer

from mtdense.analysis.flops import EXTRA_FLOP_HANDLES
from mtdense.models.backbones import AdaptedBackbone

SWIN_T = dict(type='MMSegSwin', embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
              window_size=7, drop_path_rate=0.)
TINY = dict(type='MMSegSwin', embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2),
            window_size=4, drop_path_rate=0.)


def _flops(backbone: dict, peft: dict, num_tasks: int, size: int) -> int:
    torch.manual_seed(0)
    model = AdaptedBackbone(backbone=backbone, peft=peft,
                            tasks=[f'task{i}' for i in range(num_tasks)]).eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, 3, size, size),))
    analyzer.set_op_handle(**EXTRA_FLOP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())


def test_vmt_cost_is_nearly_constant_in_tasks_on_swin_t():
    size = 112  # token grids 28, 14, 7, 4 (the last one padded to a window inside mmseg)
    one = _flops(SWIN_T, dict(type='VMTAdapter'), 1, size)
    sixteen = _flops(SWIN_T, dict(type='VMTAdapter'), 16, size)
    assert sixteen <= 1.05 * one
    # every extra task costs exactly, per level l with M_l tokens: the (M_l x r_l) x (r_l x d_l)
    # product of the task branch + the output LayerNorm (5 per element) on z_t
    tokens, dims, ranks = (28 * 28, 14 * 14, 7 * 7, 4 * 4), (96, 192, 384, 768), (6, 12, 24, 48)
    per_task = sum(m * d * (r + 5) for m, d, r in zip(tokens, dims, ranks))
    assert sixteen - one == 15 * per_task


def test_vmt_lite_per_task_cost_is_the_task_branch_only():
    one = _flops(TINY, dict(type='VMTAdapterLite'), 1, 64)
    five = _flops(TINY, dict(type='VMTAdapterLite'), 5, 64)
    # default Lite ranks round(d / 24) for d = 16, 32, 64, 128
    tokens, dims, ranks = (16 * 16, 8 * 8, 4 * 4, 2 * 2), (16, 32, 64, 128), (1, 1, 3, 5)
    assert five - one == 4 * sum(m * d * (r + 5) for m, d, r in zip(tokens, dims, ranks))


def test_per_task_adapter_cost_grows_linearly():
    one = _flops(TINY, dict(type='PerTaskAdapter'), 1, 64)
    four = _flops(TINY, dict(type='PerTaskAdapter'), 4, 64)
    assert four >= 3 * one
    assert four == 4 * one  # T full backbone passes (batch repeated T times)


def test_shared_methods_cost_does_not_depend_on_tasks():
    assert _flops(TINY, dict(type='BitFit'), 1, 64) == _flops(TINY, dict(type='BitFit'), 5, 64)


def test_mtlora_per_task_cost_is_its_task_terms_and_merges():
    """MTLoRA: qkv and attention run once; every extra task costs, at the last block of
    each stage (M tokens of width d, task rank r): proj's term on the shared attention
    output (in window layout, padding included: M_w tokens), LN2 on its stream, fc1's and
    fc2's terms on its own stream; then its own pass through the stage's patch merging."""
    size = 112  # grids 28, 14, 7, 4; the 4 x 4 stage is padded to one 7 x 7 window
    one = _flops(SWIN_T, dict(type='MTLoRA'), 1, size)
    three = _flops(SWIN_T, dict(type='MTLoRA'), 3, size)
    tokens, window_tokens = (784, 196, 49, 16), (784, 196, 49, 49)
    merged = (196, 49, 16)  # stage 2's 7 x 7 grid is padded to 8 x 8 before merging
    dims, r = (96, 192, 384, 768), 4
    per_task = sum(mw * d * r + mw * r * d  # proj: x A_t, then (x A_t) B_t
                   + 5 * m * d  # LN2 of the task stream
                   + (m * d * r + m * r * 4 * d) + (m * 4 * d * r + m * r * d)  # fc1, fc2
                   for m, mw, d in zip(tokens, window_tokens, dims))
    per_task += sum(5 * m * 4 * d + m * 4 * d * 2 * d for m, d in zip(merged, dims))
    assert three - one == 2 * per_task
