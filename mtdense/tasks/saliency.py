"""Saliency: one logit; ground truth {0, 1}, 255 ignored; prediction = sigmoid probability;
evaluated over 15 thresholds (mIoU, maxF; see docs/evaluation.md)."""
from .base import LabelTask
from .registry import register_task


@register_task
class Saliency(LabelTask):
    name = 'saliency'
    kind = 'binary'
    has_classes = False
    num_channels = 1
    primary_metric = 'mIoU'
    higher_is_better = True
    default_loss = dict(type='BalancedBCELoss')
    default_loss_weight = 5.0
    stats_type = 'SaliencyStats'
    colorizer = 'saliency'

    def predictions(self, out, model=None):
        return {'pred': out.sigmoid()}

    def predictions_in_place(self, out, model=None):
        return {'pred': out.sigmoid_()}

    def stats_options(self, options):
        return dict(ignore_index=options['ignore_index'],
                    pooled_beta2=0.3 if options['saliency_beta_switch'] else None,
                    empty_pr=options['saliency_empty_pr'])

    def colorize(self, data, colorizers, options):
        return colorizers['saliency'](data, cmap=options.get('saliency_cmap', 'viridis'))
