"""Multi-task data transforms (registered in ``mtdense.registry.TRANSFORMS``)."""
from .formatting import PackMultiTaskInputs
from .geometric import (MTPad, MTRandomCrop, MTRandomFlip, MTRandomResize, MTRandomRotate,
                        MTResize, check_map, flip_map, map_kind, resize_map, rotate_normals,
                        warp_map)
from .loading import LoadMultiTaskAnnotations, LoadMultiTaskImage
from .photometric import MTPhotoMetricDistortion
from .test_time import EVAL_PROTOCOLS, MTTestResize

__all__ = [
    'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'MTResize', 'MTRandomResize',
    'MTRandomCrop', 'MTRandomFlip', 'MTRandomRotate', 'MTPad', 'MTPhotoMetricDistortion',
    'PackMultiTaskInputs', 'map_kind', 'check_map', 'resize_map', 'warp_map', 'flip_map',
    'rotate_normals', 'MTTestResize', 'EVAL_PROTOCOLS'
]
