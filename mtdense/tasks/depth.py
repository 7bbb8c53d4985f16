"""Depth: 1 channel, metres along the camera z axis, 0 invalid. Zooming the content by s
divides depth by s (it looks s times closer); prediction = the activation (``none`` /
``softplus`` / ``exp``, the model's ``depth_activation``) clamped to ``min_depth``."""
import numpy as np
import torch
import torch.nn.functional as F

from .base import ScalarTask
from .registry import register_task


@register_task
class Depth(ScalarTask):
    name = 'depth'
    kind = 'depth'
    num_channels = 1
    primary_metric = 'rmse'
    higher_is_better = False
    default_loss = dict(type='DepthL1Loss')
    default_loss_weight = 1.0
    stats_type = 'DepthStats'
    colorizer = 'depth'
    default_layout = ('depth', '.npy', 'depth_npy')

    #: median depth above which values look like millimetres
    max_median_m = 100.0

    def value_warnings(self, arr, entry):
        valid = arr[arr > 0]
        if valid.size and float(np.median(valid)) > self.max_median_m:
            return [f'median depth {float(np.median(valid)):.1f} > {self.max_median_m:g}: values '
                    'look like millimetres, mtdense expects metres']
        return []

    def zoom_values(self, arr, zoom):
        return arr / np.float32(zoom) if zoom != 1.0 else arr  # invalid pixels stay 0

    def activate(self, out, model=None):
        act = getattr(model, 'depth_activation', 'none')
        if act == 'softplus':
            return F.softplus(out)
        if act == 'exp':
            return torch.exp(out)
        return out

    def predictions(self, out, model=None):
        return {'pred': self.activate(out, model).clamp(min=getattr(model, 'min_depth', 1e-3))}

    def predictions_in_place(self, out, model=None):
        act = getattr(model, 'depth_activation', 'none')
        if act not in ('none', 'exp'):
            return self.predictions(out, model)
        out = out.exp_() if act == 'exp' else out
        return {'pred': out.clamp_(min=getattr(model, 'min_depth', 1e-3))}

    def stats_options(self, options):
        return dict(min_pred=options['depth_min_pred'])

    def colorize(self, data, colorizers, options):
        lo, hi = options.get('range') or (None, None)
        return colorizers['depth'](data, cmap=options.get('depth_cmap', 'plasma'), vmin=lo, vmax=hi)

    def shared_range(self, gt, pred):
        """Depth panels of GT and prediction share the GT's valid range (else the prediction's)."""
        for src in (gt, pred):
            if src is None:
                continue
            arr = np.asarray(src.detach().cpu() if hasattr(src, 'detach') else src, np.float32)
            arr = arr.reshape(arr.shape[-2:]) if arr.ndim == 3 else arr  # packed (1, H, W)
            valid = np.isfinite(arr) & (arr > 0)
            if valid.any():
                return float(arr[valid].min()), float(arr[valid].max())
        return None
