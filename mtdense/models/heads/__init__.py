from .light_head import LightMultiScaleHead
from .mmseg_head_adapter import MMSegHeadAdapter

__all__ = ['LightMultiScaleHead', 'MMSegHeadAdapter']
