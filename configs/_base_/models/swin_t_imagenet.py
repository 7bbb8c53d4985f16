# swin_t_mmseg.py with the frozen ImageNet Swin-T weights (any of the official / timm / mmseg
# formats at checkpoints/swin_tiny_patch4_window7_224.pth, see checkpoints/README.md) and MTLoRA's
# Swin-T drop path: the backbone of the Swin-T experiments (../experiments/swin-t_*.py).
_base_ = ['./swin_t_mmseg.py']
model = dict(
    backbone=dict(backbone=dict(drop_path_rate=0.2),
                  checkpoint='checkpoints/swin_tiny_patch4_window7_224.pth'))
