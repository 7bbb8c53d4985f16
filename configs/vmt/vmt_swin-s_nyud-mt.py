# VMT-Adapter on a frozen ImageNet Swin-S, NYUD-v2 MT.
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
model = dict(backbone=dict(
    peft=dict(type='VMTAdapter'),
    backbone=dict(depths=(2, 2, 18, 2)),
    checkpoint='checkpoints/swin_small_patch4_window7_224.pth'))
