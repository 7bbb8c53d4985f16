"""Semantic segmentation: C class logits (C from the dataset), labels uint8, 255 ignored."""
from .base import LabelTask
from .registry import register_task


@register_task
class SemSeg(LabelTask):
    name = 'semseg'
    num_channels = None  # the dataset's classes
    primary_metric = 'mIoU'
    higher_is_better = True
    default_loss_weight = 1.0
