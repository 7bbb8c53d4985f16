"""Multi-task dense evaluation: numpy functions, the mmengine metric and Δm baselines."""
from .functional.baselines import Baselines, baselines_from_runs, load_baselines, parse_baselines
from .functional import (DepthStats, NormalsStats, SaliencyStats, SegStats, delta_m,
                         depth_scores, miou, normals_scores, saliency_scores)
from .metrics import MultiTaskMetric, format_table

__all__ = [
    'Baselines', 'baselines_from_runs', 'load_baselines', 'parse_baselines', 'SegStats',
    'SaliencyStats',
    'NormalsStats', 'DepthStats', 'miou', 'saliency_scores', 'normals_scores', 'depth_scores',
    'delta_m', 'MultiTaskMetric', 'format_table'
]
