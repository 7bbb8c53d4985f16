"""Human-part segmentation: 7 classes (background + 6 parts); an image without an annotated
person is all 255 (ignored by loss and metric)."""
from typing import Tuple

from .base import LabelTask
from .registry import register_task

HUMAN_PARTS_CLASSES: Tuple[str, ...] = ('background', 'head', 'torso', 'upper_arm',
                                        'lower_arm', 'upper_leg', 'lower_leg')


@register_task
class HumanParts(LabelTask):
    name = 'human_parts'
    num_channels = len(HUMAN_PARTS_CLASSES)
    primary_metric = 'mIoU'
    higher_is_better = True
    default_loss_weight = 2.0
    class_names = HUMAN_PARTS_CLASSES

    def colorize(self, data, colorizers, options):
        from_options = options.get('palette')
        return colorizers['labels'](data, from_options if from_options is not None
                                    else colorizers['parts_palette'])
