# MTLoRA as the official model (scale-lab/MTLoRA r64: shared LoRA rank 64 + task LoRA rank 4,
# its trainable set, its per-task downsamplers + HRNet-style heads, as
# ../_base_/models/swin_t_mmseg_mtlora_official.py); frozen ImageNet Swin-T, PASCAL-Context MT.
_base_ = ['../_base_/experiments/swin-t_pascal-mt.py']
model = dict(backbone=dict(peft=dict(type='MTLoRA')),
             heads=dict(_delete_=True, type='MTLoRAHRNetHead', channels=(18, 36, 72, 144)))
