from .light_head import LightMultiScaleHead
from .mmseg_head_adapter import MMSegHeadAdapter
from .task_batched import can_batch_heads, task_batched_heads_forward

__all__ = ['LightMultiScaleHead', 'MMSegHeadAdapter', 'can_batch_heads',
           'task_batched_heads_forward']
