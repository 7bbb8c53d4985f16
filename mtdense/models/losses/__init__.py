from .dense_losses import (BalancedBCELoss, DepthL1Loss, DepthSiLogLoss, NormalsL1Loss,
                           SegCrossEntropyLoss, masked_mean)

# Default loss type per task kind (``mtdense.tasks.TaskSpec.kind``).
DEFAULT_LOSSES = {
    'seg': dict(type='SegCrossEntropyLoss'),
    'binary': dict(type='BalancedBCELoss'),
    'normals': dict(type='NormalsL1Loss'),
    'depth': dict(type='DepthL1Loss'),
}

__all__ = ['SegCrossEntropyLoss', 'BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss',
           'DepthSiLogLoss', 'masked_mean', 'DEFAULT_LOSSES']
