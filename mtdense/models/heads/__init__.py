from .light_head import LightMultiScaleHead
from .mmseg_head_adapter import MMSegHeadAdapter
from .mtlora_hrnet_head import MTLoRAHRNetHead
from .task_batched import can_batch_heads, task_batched_heads_forward

__all__ = ['LightMultiScaleHead', 'MMSegHeadAdapter', 'MTLoRAHRNetHead', 'can_batch_heads',
           'task_batched_heads_forward']
