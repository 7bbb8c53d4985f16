"""Photometric augmentation: changes the image only, never the ground truth."""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mtdense.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MTPhotoMetricDistortion(BaseTransform):
    """Random brightness, contrast, saturation and hue on an RGB uint8 image.

    Each distortion is applied with probability 0.5, in the order brightness,
    contrast (before or after the colour changes, chosen at random), saturation,
    hue -- the recipe of mmseg's ``PhotoMetricDistortion``, here for RGB input.

    Args:
        brightness_delta: add ``U(-d, d)`` to every channel.
        contrast_range: multiply by ``U(lo, hi)``.
        saturation_range: multiply the HSV saturation by ``U(lo, hi)``.
        hue_delta: shift the OpenCV hue (0..179, i.e. 2 degrees a unit) by
            ``U(-d, d)``, wrapping around.
    """

    def __init__(self, brightness_delta: int = 32,
                 contrast_range: Tuple[float, float] = (0.5, 1.5),
                 saturation_range: Tuple[float, float] = (0.5, 1.5),
                 hue_delta: int = 18) -> None:
        for name, rng in (('contrast_range', contrast_range),
                          ('saturation_range', saturation_range)):
            if len(rng) != 2 or not 0 <= rng[0] <= rng[1]:
                raise ValueError(f'MTPhotoMetricDistortion.{name} must be (lo, hi) with '
                                 f'0 <= lo <= hi, got {rng}')
        if brightness_delta < 0 or not 0 <= hue_delta <= 180:
            raise ValueError('MTPhotoMetricDistortion: brightness_delta must be >= 0 and '
                             f'hue_delta in [0, 180]; got {brightness_delta}, {hue_delta}')
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(float(c) for c in contrast_range)
        self.saturation_range = tuple(float(s) for s in saturation_range)
        self.hue_delta = hue_delta

    @cache_randomness
    def _random_params(self) -> dict:
        def maybe(draw) -> Optional[float]:
            return draw() if np.random.randint(2) else None

        return dict(
            brightness=maybe(lambda: np.random.uniform(-self.brightness_delta,
                                                       self.brightness_delta)),
            contrast_first=bool(np.random.randint(2)),
            contrast=maybe(lambda: np.random.uniform(*self.contrast_range)),
            saturation=maybe(lambda: np.random.uniform(*self.saturation_range)),
            hue=maybe(lambda: np.random.randint(-self.hue_delta, self.hue_delta + 1)),
        )

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError('MTPhotoMetricDistortion: results has no "img"')
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('MTPhotoMetricDistortion expects an (H, W, 3) uint8 RGB image, got '
                             f'{img.dtype} {img.shape} ({results.get("img_path", "?")})')
        p = self._random_params()
        out = img.astype(np.float32)
        if p['brightness'] is not None:
            out = out + p['brightness']
        if p['contrast_first'] and p['contrast'] is not None:
            out = out * p['contrast']
        if p['saturation'] is not None or p['hue'] is not None:
            hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8),
                               cv2.COLOR_RGB2HSV).astype(np.int32)
            if p['saturation'] is not None:
                hsv[..., 1] = np.clip(hsv[..., 1] * p['saturation'], 0, 255)
            if p['hue'] is not None:
                hsv[..., 0] = (hsv[..., 0] + p['hue']) % 180
            out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
        if not p['contrast_first'] and p['contrast'] is not None:
            out = out * p['contrast']
        results['img'] = np.clip(out, 0, 255).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range={self.contrast_range}, '
                f'saturation_range={self.saturation_range}, hue_delta={self.hue_delta})')
