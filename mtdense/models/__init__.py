"""Models: data preprocessor, backbones + PETL adapters, task heads, losses, the multi-task model."""
from . import backbones, adapters  # noqa: F401  (register backbones and PETL methods)
from .data_preprocessor import MultiTaskDataPreprocessor
from .heads import LightMultiScaleHead, MMSegHeadAdapter
from .losses import (BalancedBCELoss, DepthL1Loss, DepthSiLogLoss, NormalsL1Loss,
                     SegCrossEntropyLoss)
from .multi_domain_classifier import MultiDomainClassifier
from .multitask_model import MultiTaskDenseModel

__all__ = [
    'MultiTaskDataPreprocessor', 'LightMultiScaleHead', 'MMSegHeadAdapter',
    'SegCrossEntropyLoss', 'BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss', 'DepthSiLogLoss',
    'MultiTaskDenseModel', 'MultiDomainClassifier'
]
