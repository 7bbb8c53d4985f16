"""mmcv.ops stand-in: mmseg imports on mmcv-lite, pure-PyTorch ops match, others fail clearly."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import mtdense  # noqa: F401
from mtdense.compat import MMCVOpUnavailableError, has_compiled_mmcv_ops

pytestmark = pytest.mark.skipif(has_compiled_mmcv_ops(),
                                reason='a compiled mmcv is installed; the stand-in is inactive')


def test_mmseg_models_import_and_build_swin():
    import mmseg.models  # noqa: F401
    from mmseg.models.backbones import SwinTransformer
    m = SwinTransformer(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4)
    outs = m(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]


def test_point_sample_matches_grid_sample():
    import mmcv.ops
    x = torch.randn(2, 3, 8, 8)
    pts = torch.rand(2, 5, 2)
    ref = F.grid_sample(x, pts.unsqueeze(2) * 2 - 1, align_corners=False).squeeze(3)
    assert torch.allclose(mmcv.ops.point_sample(x, pts), ref)
    # mmseg's helper goes through the stand-in
    from mmseg.models.utils import point_sample as mmseg_point_sample  # noqa: F401


def test_sigmoid_focal_loss_matches_mmseg_python_reference():
    import mmcv.ops
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    pred = torch.randn(6, 4)
    target = torch.tensor([0, 1, 2, 3, 4, 1])  # 4 == background (num_classes)
    one_hot = F.one_hot(target, 5)[:, :4].float()
    ours = mmcv.ops.sigmoid_focal_loss(pred, target, 2.0, 0.25, None, 'none')
    ref = py_sigmoid_focal_loss(pred, one_hot, gamma=2.0, alpha=0.25, reduction='none')
    assert torch.allclose(ours, ref, atol=1e-6)


def test_unavailable_op_names_itself():
    import mmcv.ops
    with pytest.raises(MMCVOpUnavailableError, match='PSAMask'):
        mmcv.ops.PSAMask('collect', (3, 3))
    with pytest.raises(AttributeError, match='nms_rotated'):
        mmcv.ops.nms_rotated


def test_compiled_mmcv_is_left_alone():
    """When mmcv._ext is importable the stand-in must not register itself."""
    code = (
        'import importlib.util, sys\n'
        'real = importlib.util.find_spec\n'
        'importlib.util.find_spec = lambda n, *a: object() if n == "mmcv._ext" else real(n, *a)\n'
        'import mtdense\n'
        'm = sys.modules.get("mmcv.ops")\n'
        'assert m is None or not getattr(m, "__mtdense_standin__", False), m\n'
        'print("untouched")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'untouched' in out.stdout
