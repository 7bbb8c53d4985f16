"""Surface normals: 3 channels, camera frame (x right, y up, z towards the viewer), unit
length; the zero vector is invalid. Flips negate x (horizontal) or y (vertical); rotations
rotate x / y with the image; prediction = the head output normalised."""
import math

import numpy as np

from .base import VectorTask
from .registry import register_task


@register_task
class Normals(VectorTask):
    name = 'normals'
    kind = 'normals'
    num_channels = 3
    primary_metric = 'mErr'
    higher_is_better = False
    default_loss = dict(type='NormalsL1Loss')
    default_loss_weight = 10.0
    stats_type = 'NormalsStats'
    colorizer = 'normals'

    def rotate_values(self, arr, angle):
        """Content rotated counter-clockwise by ``angle`` degrees (OpenCV's convention): a
        surface that faced right now faces up-right, i.e. the standard CCW rotation
        ``x' = x cos a - y sin a``, ``y' = x sin a + y cos a`` in the y-up frame."""
        a = math.radians(angle)
        c, s = math.cos(a), math.sin(a)
        out = arr.copy()
        x, y = arr[..., 0], arr[..., 1]
        out[..., 0] = c * x - s * y
        out[..., 1] = s * x + c * y
        return out.astype(np.float32)

    def value_warnings(self, arr, entry):
        """On the raw ``.npy`` (the decoder renormalises it): lengths and signs."""
        if entry.get('decoder') != 'normals_npy' or not entry.get('path'):
            return []
        raw = np.load(entry['path'], allow_pickle=False)
        valid = np.any(raw != 0, axis=-1)
        if not valid.any():
            return []
        v = raw[valid].astype(np.float64)
        out = []
        norm = np.linalg.norm(v, axis=-1)
        if np.abs(norm - 1).mean() > 0.05:
            out.append(f'normals are not unit vectors (mean length {norm.mean():.3f}); the decoder '
                       'renormalises them, check the encoding')
        if v.min() >= 0:
            out.append('no normal has a negative component: values look like colours in [0, 1], '
                       'mtdense expects camera-frame vectors in [-1, 1]')
        return out

    def stats_options(self, options):
        return dict(bin_width=options['normals_bin_width'])
