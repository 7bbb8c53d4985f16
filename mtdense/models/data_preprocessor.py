"""Batching, normalisation and padding for multi-task dense data."""
from __future__ import annotations

import math
from numbers import Number
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import PixelData
from torch import Tensor

from mtdense.registry import MODELS
from mtdense.tasks import get_task

__all__ = ['MultiTaskDataPreprocessor']



@MODELS.register_module()
class MultiTaskDataPreprocessor(BaseDataPreprocessor):
    """Normalise and stack images; pad training ground truth with invalid values.

    Input ``data = dict(inputs=[uint8 (3, H, W) RGB tensors], data_samples=[...])``
    as produced by ``PackMultiTaskInputs`` + ``pseudo_collate`` (a stacked
    (B, 3, H, W) tensor is accepted too). Images are normalised, then padded at
    the bottom/right with ``pad_val`` to a common size: the largest image
    rounded up to ``size_divisor``, or the fixed ``size``.

    In training the ground truth is at network resolution (same size as the
    image); every ``gt_<task>`` is padded with its invalid value (labels 255,
    normals 0, depth 0) to the batch shape, so padding never enters a loss. At
    test time the ground truth is at original resolution and is left untouched.

    Every sample's metainfo gets ``batch_input_shape`` (padded (H, W)),
    ``pad_shape`` (same) and ``img_shape`` if the pipeline did not set it.

    Outside training, images of different sizes in one batch are an error: padding
    them to the largest would make every prediction (and so every metric) depend on
    the test batch size, because a windowed backbone sees the padding. Test
    pipelines pad every image to one fixed size instead (``MTTestResize`` +
    ``MTPad(size=...)``, or a fixed ``size`` here); ``allow_mixed_test_sizes=True``
    accepts the dependence.

    Args:
        mean / std: per-channel normalisation in the input's channel order (RGB).
        size_divisor: pad the batch so H and W are multiples of this (None: no rounding).
        size: fixed (H, W) to pad every batch to; images larger than it raise.
        pad_val: padding value of the *normalised* image (0 = the mean colour).
        bgr_to_rgb: flip channel order first (inputs are RGB in mtdense, so False).
        allow_mixed_test_sizes: accept test batches of differently sized images
            (predictions then depend on the batch mates; see above).
        non_blocking: of host-to-device copies.
    """

    def __init__(self, mean: Sequence[Number] = (123.675, 116.28, 103.53),
                 std: Sequence[Number] = (58.395, 57.12, 57.375),
                 size_divisor: Optional[int] = 32, size: Optional[Tuple[int, int]] = None,
                 pad_val: float = 0.0, bgr_to_rgb: bool = False,
                 allow_mixed_test_sizes: bool = False, non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'MultiTaskDataPreprocessor: mean and std need 3 values, got '
                             f'{list(mean)} and {list(std)}')
        if any(s <= 0 for s in std):
            raise ValueError(f'MultiTaskDataPreprocessor: std must be positive, got {list(std)}')
        if size_divisor is not None and int(size_divisor) <= 0:
            raise ValueError(f'MultiTaskDataPreprocessor: size_divisor must be positive or None, '
                             f'got {size_divisor}')
        if size is not None:
            if len(size) != 2 or any(int(s) <= 0 for s in size):
                raise ValueError(f'MultiTaskDataPreprocessor: size must be (H, W), got {size}')
            size = (int(size[0]), int(size[1]))
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.size_divisor = None if size_divisor is None else int(size_divisor)
        self.size = size
        self.pad_val = float(pad_val)
        self.bgr_to_rgb = bool(bgr_to_rgb)
        self.allow_mixed_test_sizes = bool(allow_mixed_test_sizes)

    def _target_shape(self, shapes: List[Tuple[int, int]]) -> Tuple[int, int]:
        max_h = max(h for h, _ in shapes)
        max_w = max(w for _, w in shapes)
        if self.size is not None:
            if max_h > self.size[0] or max_w > self.size[1]:
                raise ValueError(f'MultiTaskDataPreprocessor: an image of size ({max_h}, {max_w}) '
                                 f'is larger than the fixed pad size {self.size}; resize/crop it '
                                 f'in the pipeline or raise `size`')
            return self.size
        if self.size_divisor is not None:
            d = self.size_divisor
            max_h, max_w = int(math.ceil(max_h / d) * d), int(math.ceil(max_w / d) * d)
        return max_h, max_w

    def forward(self, data: dict, training: bool = False) -> dict:
        """Return ``dict(inputs=Tensor[B, 3, H, W], data_samples=list or None)``."""
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError('MultiTaskDataPreprocessor: expected a dict with "inputs" (and '
                            f'optionally "data_samples"), got {type(data).__name__}')
        data = self.cast_data(data)
        inputs: Union[Tensor, List[Tensor]] = data['inputs']
        data_samples = data.get('data_samples', None)
        if isinstance(inputs, Tensor):
            if inputs.dim() != 4:
                raise ValueError(f'MultiTaskDataPreprocessor: stacked inputs must be (B, 3, H, W), '
                                 f'got {tuple(inputs.shape)}')
            inputs = list(inputs)
        if len(inputs) == 0:
            raise ValueError('MultiTaskDataPreprocessor: empty batch')
        if data_samples is not None and len(data_samples) != len(inputs):
            raise ValueError(f'MultiTaskDataPreprocessor: {len(inputs)} inputs but '
                             f'{len(data_samples)} data samples')

        images, shapes = [], []
        for i, img in enumerate(inputs):
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f'MultiTaskDataPreprocessor: input {i} must be a (3, H, W) '
                                 f'tensor, got {tuple(img.shape)}')
            if self.bgr_to_rgb:
                img = img.flip(0)
            img = (img.float() - self.mean) / self.std
            images.append(img)
            shapes.append((int(img.shape[1]), int(img.shape[2])))

        if (not training and self.size is None and not self.allow_mixed_test_sizes
                and len(set(shapes)) > 1):
            paths = [s.metainfo.get('img_path') for s in data_samples] if data_samples else []
            listed = ', '.join(f'{p or i}: {hw}' for i, (p, hw) in
                               enumerate(zip(paths or [None] * len(shapes), shapes)))
            raise ValueError(
                'MultiTaskDataPreprocessor: a test batch holds images of different sizes '
                f'(h, w) ({listed}); padding them to a common size would make each prediction '
                'depend on its batch mates. Make the test pipeline give every image one size '
                '(MTTestResize(scale=S) then MTPad(size=S)), pad to a fixed size here '
                '(data_preprocessor.size), use test batch size 1, or set '
                'data_preprocessor.allow_mixed_test_sizes=True to accept the dependence')
        out_h, out_w = self._target_shape(shapes)
        batch = torch.stack([
            F.pad(img, (0, out_w - w, 0, out_h - h), value=self.pad_val)
            for img, (h, w) in zip(images, shapes)
        ])

        if data_samples is not None:
            for sample, (h, w) in zip(data_samples, shapes):
                # img_shape is the valid (unpadded) region the model crops before
                # resizing predictions back to ori_shape.
                if 'img_shape' not in sample.metainfo:
                    sample.set_metainfo(dict(img_shape=(h, w)))
                sample.set_metainfo(dict(batch_input_shape=(out_h, out_w), pad_shape=(out_h, out_w)))
                if training:
                    self._pad_gts(sample, (h, w), (out_h, out_w))
        return dict(inputs=batch, data_samples=data_samples)

    @staticmethod
    def _pad_gts(sample, img_hw: Tuple[int, int], out_hw: Tuple[int, int]) -> None:
        """Pad each ``gt_<task>`` of a training sample to the batch shape with its invalid value."""
        for key in list(sample.keys()):
            if not key.startswith('gt_'):
                continue
            task = key[3:]
            gt = getattr(sample, key)
            data = gt.data if isinstance(gt, PixelData) else gt
            if not isinstance(data, Tensor) or data.dim() != 3:
                raise ValueError(f'MultiTaskDataPreprocessor: {key} of '
                                 f'{sample.metainfo.get("img_path", "<sample>")} must be a (C, H, W) '
                                 f'tensor, got {type(data).__name__} '
                                 f'{tuple(getattr(data, "shape", ()))}')
            if tuple(data.shape[1:]) != tuple(img_hw):
                raise ValueError(f'MultiTaskDataPreprocessor: {key} of '
                                 f'{sample.metainfo.get("img_path", "<sample>")} has size '
                                 f'{tuple(data.shape[1:])} but the training image is {tuple(img_hw)}; '
                                 'training ground truth must be at network resolution')
            pad_value = get_task(task).invalid_value  # padding never enters a loss
            h, w = img_hw
            if (h, w) != tuple(out_hw):
                data = F.pad(data, (0, out_hw[1] - w, 0, out_hw[0] - h), value=pad_value)
            sample.set_field(PixelData(data=data), key, dtype=PixelData)
