"""Parameter-efficient transfer methods for multi-task dense prediction.

Every method is selected by ``AdaptedBackbone(peft=dict(type=...))``.
"""
from mtdense.models.petl import BasePEFTMethod
from .depthwise_sharing import DepthwiseBank, DepthwiseSharing, SoftSharingGate
from .finetune import BitFit, DecoderOnly, FullFineTune, SingleTaskFineTune
from .kem import LowRankKEM, ScaleKEM, ScaleShiftKEM
from .lora import LoRABank
from .modulation import ModulationAdapter, ModulationBank
from .mtlora import MTLoRA
from .per_task_adapter import PerTaskAdapter, TaskAdapterBank
from .per_task_lora import PerTaskLoRA
from .vmt_adapter import SharedAdapter, VMTAdapter, VMTAdapterLite

__all__ = [
    'BasePEFTMethod', 'BitFit', 'DecoderOnly', 'FullFineTune', 'SingleTaskFineTune', 'LowRankKEM',
    'ScaleKEM', 'ScaleShiftKEM', 'LoRABank', 'MTLoRA', 'PerTaskAdapter', 'TaskAdapterBank',
    'PerTaskLoRA', 'SharedAdapter', 'VMTAdapter', 'VMTAdapterLite',
    'DepthwiseBank', 'DepthwiseSharing', 'SoftSharingGate', 'ModulationAdapter', 'ModulationBank'
]
