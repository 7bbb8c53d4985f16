# VMT-Adapter on a frozen ImageNet Swin-B, NYUD-v2 MT.
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
model = dict(backbone=dict(
    peft=dict(type='VMTAdapter'),
    backbone=dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    checkpoint='checkpoints/swin_base_patch4_window7_224.pth'))
