"""Per-task dense losses.

Every loss takes the head output ``pred`` (B, C, H, W) at input resolution and the
stacked ground truth ``target`` in the conventions of :mod:`mtdense.tasks`
(labels (B, 1, H, W) int64 with 255 = ignore; normals (B, 3, H, W) with the zero
vector = invalid; depth (B, 1, H, W) metres with 0 = invalid) and returns a scalar.

Losses are *pixel-pooled* over the batch: the mean runs over all valid pixels of
all images, so an image without valid pixels (e.g. human parts of an image with
no person) contributes nothing. When a batch has no valid pixel at all the loss
is an exact 0 that is still connected to ``pred`` (so DDP / the optimiser see a
gradient of zeros instead of a NaN or a missing graph).

Task weights live in the model (``MultiTaskDenseModel.loss_weights``), not here,
so a loss never scales twice.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mtdense.registry import MODELS
from mtdense.tasks import IGNORE_INDEX

__all__ = ['SegCrossEntropyLoss', 'BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss',
           'DepthSiLogLoss', 'masked_mean']


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over ``mask``; 0 (with grad) if the mask is empty.

    ``values`` and ``mask`` broadcast to the same shape. Masked-out entries are
    zeroed with ``torch.where`` (not multiplied) so a NaN/inf there cannot leak.
    """
    mask = mask.expand_as(values)
    total = torch.where(mask, values, values.new_zeros(())).sum()
    count = mask.sum()
    return total / count.clamp(min=1).to(values.dtype)


def _check_pair(name: str, pred: Tensor, target: Tensor, pred_channels: Optional[int],
                target_channels: int) -> None:
    if pred.dim() != 4 or target.dim() != 4:
        raise ValueError(f'{name}: expected pred and target as (B, C, H, W), got pred '
                         f'{tuple(pred.shape)} and target {tuple(target.shape)}')
    if pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[2:]:
        raise ValueError(f'{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} '
                         f'differ in batch size or spatial size')
    if pred_channels is not None and pred.shape[1] != pred_channels:
        raise ValueError(f'{name}: expected {pred_channels} prediction channel(s), got '
                         f'{pred.shape[1]} (pred shape {tuple(pred.shape)})')
    if target.shape[1] != target_channels:
        raise ValueError(f'{name}: expected {target_channels} target channel(s), got '
                         f'{target.shape[1]} (target shape {tuple(target.shape)})')


@MODELS.register_module()
class SegCrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over C classes, ignoring ``ignore_index`` pixels.

    Args:
        ignore_index: label value excluded from the loss (255).
        class_weight: optional per-class weights (length C). With weights the
            mean is the weighted mean over valid pixels (as ``F.cross_entropy``).
        label_smoothing: passed to ``F.cross_entropy``.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX,
                 class_weight: Optional[Sequence[float]] = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        if class_weight is not None:
            self.register_buffer('class_weight', torch.as_tensor(class_weight, dtype=torch.float32),
                                 persistent=False)
        else:
            self.class_weight = None

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target, None, 1)
        num_classes = pred.shape[1]
        if self.class_weight is not None and self.class_weight.numel() != num_classes:
            raise ValueError(f'SegCrossEntropyLoss: class_weight has {self.class_weight.numel()} '
                             f'entries but the prediction has {num_classes} classes')
        labels = target[:, 0].long()
        valid = labels != self.ignore_index
        bad = valid & ((labels < 0) | (labels >= num_classes))
        if bad.any():
            raise ValueError(f'SegCrossEntropyLoss: labels must be in [0, {num_classes}) or '
                             f'{self.ignore_index}; found {torch.unique(labels[bad]).tolist()}')
        # Per-pixel loss; ignored pixels get 0 and are excluded from the count, so an
        # all-ignored batch gives 0 instead of F.cross_entropy's 0/0 = NaN.
        per_pixel = F.cross_entropy(pred, labels, weight=self.class_weight,
                                    ignore_index=self.ignore_index, reduction='none',
                                    label_smoothing=self.label_smoothing)
        if self.class_weight is None:
            return masked_mean(per_pixel, valid)
        denom = self.class_weight[labels.clamp(0, num_classes - 1)][valid].sum()
        return per_pixel.sum() / denom.clamp(min=torch.finfo(per_pixel.dtype).tiny)


@MODELS.register_module()
class BalancedBCELoss(nn.Module):
    """Class-balanced binary cross-entropy on logits (saliency, edges).

    With P positive and N negative valid pixels in the batch (V = P + N)::

        loss = (w * sum_pos bce + (1 - w) * sum_neg bce) / V

    ``pos_weight=None`` (saliency): w = N / V, each class weighted by the frequency of
    the *other* one, so the rarer class is not swamped; if only one class is present
    in the batch that weight would be 0 and nothing would be learned, so the loss falls
    back to the plain mean BCE over valid pixels. A fixed ``pos_weight`` w (edges: 0.95,
    the ASTMT / MTI-Net convention) is used as is.

    Args:
        ignore_index: label value excluded from the loss (255).
        balanced: False gives the plain mean BCE over valid pixels.
        pos_weight: fixed weight w in (0, 1) of the positives (negatives: 1 - w);
            None: the batch's negative share.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, balanced: bool = True,
                 pos_weight: Optional[float] = None) -> None:
        super().__init__()
        if pos_weight is not None and (isinstance(pos_weight, bool)
                                       or not isinstance(pos_weight, (int, float))
                                       or not 0 < pos_weight < 1):
            raise ValueError(f'BalancedBCELoss: pos_weight must be a number in (0, 1) (the '
                             f'weight of positives; negatives get 1 - pos_weight) or None, got '
                             f'{pos_weight!r}')
        if pos_weight is not None and not balanced:
            raise ValueError('BalancedBCELoss: pos_weight is a balancing weight; it cannot be '
                             'combined with balanced=False')
        self.ignore_index = int(ignore_index)
        self.balanced = bool(balanced)
        self.pos_weight = None if pos_weight is None else float(pos_weight)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target, 1, 1)
        labels = target.long()
        valid = labels != self.ignore_index
        bad = valid & (labels != 0) & (labels != 1)
        if bad.any():
            raise ValueError(f'BalancedBCELoss: labels must be 0, 1 or {self.ignore_index}; '
                             f'found {torch.unique(labels[bad]).tolist()}')
        pos = valid & (labels == 1)
        neg = valid & (labels == 0)
        per_pixel = F.binary_cross_entropy_with_logits(pred, pos.to(pred.dtype), reduction='none')
        num_pos, num_neg = pos.sum(), neg.sum()
        num_valid = (num_pos + num_neg).to(pred.dtype)
        if self.pos_weight is not None:
            if num_valid == 0:
                return masked_mean(per_pixel, valid)
            w_pos = pred.new_tensor(self.pos_weight)
            w_neg = pred.new_tensor(1.0 - self.pos_weight)
        elif not self.balanced or num_pos == 0 or num_neg == 0:
            return masked_mean(per_pixel, valid)
        else:
            w_pos, w_neg = num_neg / num_valid, num_pos / num_valid
        weights = torch.where(pos, w_pos, w_neg)
        weights = torch.where(valid, weights, weights.new_zeros(()))
        return (weights * per_pixel).sum() / num_valid


@MODELS.register_module()
class NormalsL1Loss(nn.Module):
    """L1 between unit-normalised predicted normals and the ground truth.

    The prediction is L2-normalised per pixel first (the metric is an angle, so
    only the direction matters). The mean runs over the 3 components of every
    valid pixel (valid = non-zero ground-truth vector), the convention under
    which the usual loss weight of 10 was tuned.

    Args:
        normalize: L2-normalise the prediction before the L1 (default True).
        eps: norm floor of the normalisation.
    """

    def __init__(self, normalize: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.normalize = bool(normalize)
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target, 3, 3)
        if self.normalize:
            pred = F.normalize(pred, p=2, dim=1, eps=self.eps)
        valid = (target != 0).any(dim=1, keepdim=True)
        return masked_mean((pred - target.to(pred.dtype)).abs(), valid)


@MODELS.register_module()
class DepthL1Loss(nn.Module):
    """Mean absolute depth error (metres) over valid pixels (``gt > min_depth``).

    Args:
        min_depth: ground truth at or below this value is invalid (0 = invalid).
        max_depth: optional upper bound; larger ground truth is ignored.
    """

    def __init__(self, min_depth: float = 0.0, max_depth: Optional[float] = None) -> None:
        super().__init__()
        self.min_depth = float(min_depth)
        self.max_depth = None if max_depth is None else float(max_depth)

    def valid_mask(self, target: Tensor) -> Tensor:
        valid = torch.isfinite(target) & (target > self.min_depth)
        if self.max_depth is not None:
            valid &= target <= self.max_depth
        return valid

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target, 1, 1)
        valid = self.valid_mask(target)
        diff = (pred - torch.where(valid, target, target.new_zeros(())).to(pred.dtype)).abs()
        return masked_mean(diff, valid)


@MODELS.register_module()
class DepthSiLogLoss(DepthL1Loss):
    """Scale-invariant log depth loss (Eigen et al., 2014).

    With d = log(pred) - log(gt) over the n valid pixels of the batch::

        loss = scale * sqrt(mean(d^2) - lambd * mean(d)^2 + eps)

    ``lambd`` = 1 is fully scale invariant, 0 is the log-RMSE; 0.85 with
    ``scale`` = 10 is the common setting for monocular depth. The prediction
    must be positive: build the model with ``depth_activation='softplus'`` or
    ``'exp'`` (the model checks this); values are floored at ``pred_floor``.

    Args:
        lambd: variance weight in [0, 1].
        scale: output scale.
        pred_floor: lower clamp of the prediction before the log.
        eps: added under the square root (its gradient is infinite at 0).
        min_depth / max_depth: validity range of the ground truth.
    """

    requires_positive_pred = True

    def __init__(self, lambd: float = 0.85, scale: float = 10.0, pred_floor: float = 1e-3,
                 eps: float = 1e-6, min_depth: float = 0.0,
                 max_depth: Optional[float] = None) -> None:
        super().__init__(min_depth=min_depth, max_depth=max_depth)
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f'DepthSiLogLoss: lambd must be in [0, 1], got {lambd}')
        self.lambd = float(lambd)
        self.scale = float(scale)
        self.pred_floor = float(pred_floor)
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target, 1, 1)
        valid = self.valid_mask(target)
        safe_gt = torch.where(valid, target, target.new_ones(())).to(pred.dtype)
        d = torch.log(pred.clamp(min=self.pred_floor)) - torch.log(safe_gt)
        if not valid.any():
            return (pred * 0).sum()
        mean_d = masked_mean(d, valid)
        mean_d2 = masked_mean(d * d, valid)
        var = (mean_d2 - self.lambd * mean_d * mean_d).clamp(min=0)
        return self.scale * torch.sqrt(var + self.eps)
