"""Numpy metric functions and their additive accumulators (definitions: docs/evaluation.md).

Each task kind has an accumulator (``SegStats``, ``SaliencyStats``, ``NormalsStats``,
``DepthStats``) with ``update(pred, gt)``, ``merge(other)``, ``state_dict()`` /
``add_state(state)`` (compact additive records, summed across images and ranks) and
``compute()``. The functions below run an accumulator over whole arrays or lists.
``EdgeStats`` (edge detection: odsF, oisF, AP) keeps one small record per image instead.
"""
from .decathlon import (decathlon_domain_score, decathlon_score, load_decathlon_baselines,
                        parse_decathlon_baselines, top1_accuracy)
from .depth import DEPTH_DELTAS, DepthStats, depth_scores
from .edge import (DEFAULT_EDGE_MAX_DIST, EdgeStats, average_precision,
                   default_edge_thresholds, edge_image_counts, edge_match_count, edge_scores,
                   thin_mask)
from .multi_task import delta_m, primary_metrics, relative_gains
from .normals import NORMALS_THRESHOLDS, NormalsStats, angular_error, normals_scores
from .saliency import SaliencyStats, default_saliency_thresholds, saliency_scores
from .seg import SegStats, miou

#: statistics classes by name (a task definition's ``stats_type``)
STATS = {'SegStats': SegStats, 'SaliencyStats': SaliencyStats, 'NormalsStats': NormalsStats,
         'DepthStats': DepthStats, 'EdgeStats': EdgeStats}

__all__ = [
    'STATS', 'SegStats', 'SaliencyStats', 'NormalsStats', 'DepthStats', 'miou', 'saliency_scores',
    'normals_scores', 'depth_scores', 'delta_m', 'primary_metrics', 'relative_gains',
    'angular_error', 'default_saliency_thresholds', 'NORMALS_THRESHOLDS', 'DEPTH_DELTAS',
    'decathlon_domain_score', 'decathlon_score', 'load_decathlon_baselines',
    'parse_decathlon_baselines', 'top1_accuracy'
]
__all__ += ['EdgeStats', 'edge_scores', 'edge_image_counts', 'edge_match_count', 'thin_mask',
            'average_precision', 'default_edge_thresholds', 'DEFAULT_EDGE_MAX_DIST']
