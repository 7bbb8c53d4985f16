"""Adapter-ready backbones: hosts around mmseg/timm Swin and ViT, and AdaptedBackbone."""
from mtdense.models.petl import BackboneHost, BlockRef, ConvTaskMethod, LevelRef
from .adapted_backbone import AdaptedBackbone
from .checkpoint import (CheckpointMismatchError, convert_state_dict, detect_format,
                         load_backbone_checkpoint, read_state_dict)
from .conv_multitask import ConvMultiTaskBackbone
from .mmseg_swin import MMSegSwin
from .mmseg_vit import MMSegViT
from .timm_swin import TimmSwin
from .timm_vit import TimmViT

__all__ = [
    'AdaptedBackbone', 'BackboneHost', 'BlockRef', 'LevelRef', 'CheckpointMismatchError',
    'convert_state_dict', 'detect_format', 'load_backbone_checkpoint', 'read_state_dict',
    'MMSegSwin', 'MMSegViT', 'TimmSwin', 'TimmViT',
    'ConvMultiTaskBackbone', 'ConvTaskMethod'
]
