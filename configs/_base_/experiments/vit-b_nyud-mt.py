# Frozen ImageNet ViT-B/16 (../models/vit_b_timm.py) on NYUD-v2 MT, MTLoRA's optimiser and schedule.
# A method config adds its PETL method: model = dict(backbone=dict(peft=dict(type=...))).
_base_ = ['../models/vit_b_timm.py', '../datasets/nyud_mt.py', '../schedules/mtlora_300e_nyud.py',
          '../default_runtime.py']
model = dict(tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}})
