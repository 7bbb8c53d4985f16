"""Edge detection: one logit; ground truth {0, 1} one-pixel-wide boundaries, 255 ignored;
prediction = sigmoid boundary probability; evaluated BSDS-style (odsF, oisF, AP over 99
thresholds, matching within ``max_dist`` x the image diagonal; see docs/evaluation.md).

Loss: class-balanced BCE with a fixed positive weight 0.95 (negatives 0.05), loss weight
50 -- the ASTMT / MTI-Net convention. The matching tolerance comes from the metric
(``MultiTaskMetric(edge_max_dist=...)``) or the dataset's metainfo ``edge_max_dist``
(PASCAL-Context 0.0075, NYUD-v2 0.011).
"""
from .base import LabelTask
from .registry import register_task


@register_task
class Edge(LabelTask):
    name = 'edge'
    kind = 'binary'
    has_classes = False
    num_channels = 1
    primary_metric = 'odsF'
    higher_is_better = True
    default_loss = dict(type='BalancedBCELoss', pos_weight=0.95)
    default_loss_weight = 50.0
    stats_type = 'EdgeStats'
    colorizer = 'saliency'
    default_layout = ('edge', '.npy', 'edge_npy')

    def predictions(self, out, model=None):
        return {'pred': out.sigmoid()}

    def predictions_in_place(self, out, model=None):
        return {'pred': out.sigmoid_()}

    def stats_options(self, options):
        return dict(max_dist=options['edge_max_dist'], thresholds=options.get('edge_thresholds'),
                    ignore_index=options['ignore_index'])

    def colorize(self, data, colorizers, options):
        # a binary / probability map like saliency; white boundaries on black
        return colorizers['saliency'](data, cmap=options.get('edge_cmap', 'gray'))
