"""Hand-checked values of the dense losses, and NaN-free behaviour without valid pixels."""
import math

import pytest
import torch
import torch.nn.functional as F

from mtdense.models.losses import (BalancedBCELoss, DepthL1Loss, DepthSiLogLoss, NormalsL1Loss,
                                   SegCrossEntropyLoss)
from mtdense.registry import MODELS


def test_losses_registered():
    for name in ('SegCrossEntropyLoss', 'BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss',
                 'DepthSiLogLoss'):
        assert MODELS.get(name) is not None, name


def test_ce_ignores_255_by_hand():
    # 1 image, 2 classes, 1x3 pixels; the last pixel is ignored.
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]], requires_grad=True)
    target = torch.tensor([[[[0, 1, 255]]]])
    loss = SegCrossEntropyLoss()(logits, target)
    p0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    p1 = -math.log(math.exp(1) / (math.exp(1) + 1))
    assert loss.item() == pytest.approx((p0 + p1) / 2, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[..., 2] == 0)  # ignored pixel gets no gradient


def test_ce_all_ignored_image_contributes_nothing():
    # Image 0 has labels, image 1 is all 255 (no person): the loss equals image 0's alone.
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 4, 4)
    target = torch.randint(0, 7, (2, 1, 4, 4))
    target[1] = 255
    both = SegCrossEntropyLoss()(logits, target)
    first = SegCrossEntropyLoss()(logits[:1], target[:1])
    assert both.item() == pytest.approx(first.item(), rel=1e-6)
    assert both.item() == pytest.approx(F.cross_entropy(logits[:1], target[:1, 0]).item(), rel=1e-6)


def test_ce_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r'labels must be in \[0, 3\)'):
        SegCrossEntropyLoss()(torch.zeros(1, 3, 2, 2), torch.full((1, 1, 2, 2), 5))


def test_balanced_bce_weights_by_hand():
    # 1 positive, 3 negatives, 1 ignored pixel.
    logits = torch.tensor([[[[0.5, -1.0, 2.0, 0.0, 9.0]]]])
    target = torch.tensor([[[[1, 0, 0, 0, 255]]]])
    loss = BalancedBCELoss()(logits, target)

    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    pos = bce(0.5, 1)
    neg = bce(-1.0, 0) + bce(2.0, 0) + bce(0.0, 0)
    expected = (3 / 4 * pos + 1 / 4 * neg) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = BalancedBCELoss(balanced=False)(logits, target)
    assert plain.item() == pytest.approx((pos + neg) / 4, rel=1e-6)


def test_balanced_bce_single_class_falls_back_to_mean():
    logits = torch.tensor([[[[0.3, -0.2]]]])
    target = torch.zeros(1, 1, 1, 2, dtype=torch.long)
    expected = F.binary_cross_entropy_with_logits(logits, target.float())
    assert BalancedBCELoss()(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_normals_l1_normalises_and_uses_valid_only():
    pred = torch.zeros(1, 3, 1, 2)
    pred[0, :, 0, 0] = torch.tensor([0.0, 0.0, 5.0])   # unit (0, 0, 1) after normalisation
    pred[0, :, 0, 1] = torch.tensor([7.0, 7.0, 7.0])   # invalid pixel: must not matter
    target = torch.zeros(1, 3, 1, 2)
    target[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    loss = NormalsL1Loss()(pred, target)
    # |0-1| + |0-0| + |1-0| = 2 over 3 components of the one valid pixel.
    assert loss.item() == pytest.approx(2 / 3, rel=1e-6)


def test_depth_l1_valid_only():
    pred = torch.tensor([[[[1.0, 2.0, 100.0]]]])
    target = torch.tensor([[[[1.5, 1.0, 0.0]]]])
    assert DepthL1Loss()(pred, target).item() == pytest.approx((0.5 + 1.0) / 2)
    assert DepthL1Loss(max_depth=1.2)(pred, target).item() == pytest.approx(1.0)


def test_depth_silog_by_hand():
    pred = torch.tensor([[[[2.0, 4.0, 1.0]]]])
    target = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    d = torch.tensor([math.log(2), math.log(4)])
    expected = 10 * math.sqrt((d ** 2).mean().item() - 0.85 * d.mean().item() ** 2 + 1e-6)
    assert DepthSiLogLoss()(pred, target).item() == pytest.approx(expected, rel=1e-5)
    # lambd = 1 is scale invariant: a global scale of the prediction changes nothing.
    a = DepthSiLogLoss(lambd=1.0, eps=0)(pred, torch.tensor([[[[1.0, 3.0, 0.0]]]]))
    b = DepthSiLogLoss(lambd=1.0, eps=0)(pred * 3, torch.tensor([[[[1.0, 3.0, 0.0]]]]))
    assert a.item() == pytest.approx(b.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize('loss_fn,channels,invalid', [
    (SegCrossEntropyLoss(), 5, lambda: torch.full((2, 1, 4, 4), 255)),
    (BalancedBCELoss(), 1, lambda: torch.full((2, 1, 4, 4), 255)),
    (NormalsL1Loss(), 3, lambda: torch.zeros(2, 3, 4, 4)),
    (DepthL1Loss(), 1, lambda: torch.zeros(2, 1, 4, 4)),
    (DepthSiLogLoss(), 1, lambda: torch.zeros(2, 1, 4, 4)),
])
def test_no_valid_pixels_gives_zero_with_grad(loss_fn, channels, invalid):
    pred = torch.randn(2, channels, 4, 4).abs().add(0.1).requires_grad_(True)
    loss = loss_fn(pred, invalid())
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.all(pred.grad == 0)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match='differ in batch size or spatial size'):
        DepthL1Loss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match='expected 3 prediction channel'):
        NormalsL1Loss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4))
