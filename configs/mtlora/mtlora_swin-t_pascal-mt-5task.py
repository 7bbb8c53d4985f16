# MTLoRA (the official r64 model, as mtlora_swin-t_pascal-mt.py) on 5-task PASCAL-Context MT:
# one task LoRA, downsampler and HRNet-style head more, for edge.
_base_ = ['../_base_/experiments/swin-t_pascal-mt-5task.py']
model = dict(backbone=dict(peft=dict(type='MTLoRA')),
             heads=dict(_delete_=True, type='MTLoRAHRNetHead', channels=(18, 36, 72, 144)))
