# Frozen ImageNet Swin-T (weights at checkpoints/swin_tiny_patch4_window7_224.pth, see
# checkpoints/README.md) on NYUD-v2 MT (semseg, depth, normals), MTLoRA's optimiser and
# 300-epoch schedule. A method config adds its PETL method.
_base_ = ['../models/swin_t_mmseg.py', '../datasets/nyud_mt.py',
          '../schedules/mtlora_300e_nyud.py', '../default_runtime.py']
model = dict(
    tasks={{_base_.tasks}}, num_classes={{_base_.num_classes}},
    backbone=dict(backbone=dict(drop_path_rate=0.2),
                  checkpoint='checkpoints/swin_tiny_patch4_window7_224.pth'))
