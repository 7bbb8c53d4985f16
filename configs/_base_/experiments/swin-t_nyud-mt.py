# Frozen ImageNet Swin-T (../models/swin_t_imagenet.py) on NYUD-v2 MT (semseg, depth, normals),
# MTLoRA's optimiser and 300-epoch schedule. A method config adds its PETL method.
_base_ = ['../models/swin_t_imagenet.py', '../datasets/nyud_mt.py',
          '../schedules/mtlora_300e_nyud.py', '../default_runtime.py']
model = dict(tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}})
