# Frozen ImageNet Swin-T (mmseg SwinTransformer, weights in any of the official / timm / mmseg
# formats at checkpoints/swin_tiny_patch4_window7_224.pth, see checkpoints/README.md) on
# PASCAL-Context MT (semseg, human_parts, saliency, normals) with the MTLoRA protocol.
# A method config adds its PETL method: model = dict(backbone=dict(peft=dict(type=...))).
_base_ = ['../models/swin_t_mmseg.py', '../datasets/pascal_context_mt.py',
          '../schedules/mtlora_300e_pascal.py', '../default_runtime.py']
model = dict(
    tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}},
    backbone=dict(backbone=dict(drop_path_rate=0.2),  # MTLoRA's Swin-T setting
                  checkpoint='checkpoints/swin_tiny_patch4_window7_224.pth'))
