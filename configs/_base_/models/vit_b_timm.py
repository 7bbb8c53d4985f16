# The common model of the PETL comparisons on a ViT-B/16 (timm VisionTransformer, weights at
# checkpoints/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors): a 4-level pyramid from
# the single-scale ViT by mmseg's MultiLevelNeck with 128 channels (the host default, 768,
# would train 21 M neck parameters, ~25% of ViT-B), one light head per task.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(
    backbone=dict(_delete_=True, type='TimmViT', model_name='vit_base_patch16_224',
                  drop_path_rate=0.2),
    checkpoint='checkpoints/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors',
    neck=dict(type='MultiLevelNeck', in_channels=[768, 768, 768, 768], out_channels=128,
              scales=[4, 2, 1, 0.5])))
