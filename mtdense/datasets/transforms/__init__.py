"""Multi-task data transforms (registered in ``mtdense.registry.TRANSFORMS``)."""
from .formatting import PackDomainInputs, PackMultiTaskInputs
from .geometric import (MTPad, MTRandomCrop, MTRandomFlip, MTRandomResize, MTRandomRotate,
                        MTResize, check_map, resize_map, rotate_normals)
from .loading import LoadMultiTaskAnnotations, LoadMultiTaskImage, LoadMultiTaskImageFromArray
from .photometric import MTPhotoMetricDistortion
from .test_time import EVAL_PROTOCOLS, MTTestResize

__all__ = [
    'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'LoadMultiTaskImageFromArray', 'MTResize', 'MTRandomResize',
    'MTRandomCrop', 'MTRandomFlip', 'MTRandomRotate', 'MTPad', 'MTPhotoMetricDistortion',
    'PackMultiTaskInputs', 'PackDomainInputs', 'check_map', 'resize_map', 'rotate_normals', 'MTTestResize',
    'EVAL_PROTOCOLS'
]
