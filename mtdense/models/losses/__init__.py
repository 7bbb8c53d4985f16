from .dense_losses import (BalancedBCELoss, DepthL1Loss, DepthSiLogLoss, NormalsL1Loss,
                           SegCrossEntropyLoss, masked_mean)

# Each task's default loss and weight are part of its definition (mtdense.tasks).

__all__ = ['SegCrossEntropyLoss', 'BalancedBCELoss', 'NormalsL1Loss', 'DepthL1Loss',
           'DepthSiLogLoss', 'masked_mean']
