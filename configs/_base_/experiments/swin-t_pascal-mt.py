# Frozen ImageNet Swin-T (../models/swin_t_imagenet.py: mmseg SwinTransformer, MTLoRA's drop path)
# on PASCAL-Context MT (semseg, human_parts, saliency, normals) with the MTLoRA protocol.
# A method config adds its PETL method: model = dict(backbone=dict(peft=dict(type=...))).
_base_ = ['../models/swin_t_imagenet.py', '../datasets/pascal_context_mt.py',
          '../schedules/mtlora_300e_pascal.py', '../default_runtime.py']
model = dict(tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}})
