# VMT-Adapter on a frozen ImageNet ViT-B/16 (timm VisionTransformer, 4-level pyramid by mmseg's MultiLevelNeck), NYUD-v2 MT.
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
model = dict(backbone=dict(
    peft=dict(type='VMTAdapter'),
    backbone=dict(_delete_=True, type='TimmViT', model_name='vit_base_patch16_224',
                  drop_path_rate=0.2),
    checkpoint='checkpoints/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors',
    # the 4-level pyramid from the single-scale ViT; 128 channels keep the neck near 1% of
    # ViT-B (the host default, 768, would train 21 M neck parameters)
    neck=dict(type='MultiLevelNeck', in_channels=[768, 768, 768, 768], out_channels=128,
              scales=[4, 2, 1, 0.5])))
