# VMT-Adapter on a frozen ImageNet ViT-B/16 (timm VisionTransformer, 4-level pyramid by mmseg's MultiLevelNeck), NYUD-v2 MT.
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
model = dict(backbone=dict(
    peft=dict(type='VMTAdapter'),
    backbone=dict(_delete_=True, type='TimmViT', model_name='vit_base_patch16_224',
                  drop_path_rate=0.2),
    checkpoint='checkpoints/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors'))
