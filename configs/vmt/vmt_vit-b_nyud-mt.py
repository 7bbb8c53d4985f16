# VMT-Adapter on a frozen ImageNet ViT-B/16 (timm; 4-level pyramid by mmseg's MultiLevelNeck), NYUD-v2 MT.
_base_ = ['../_base_/experiments/vit-b_nyud-mt.py']
model = dict(backbone=dict(peft=dict(type='VMTAdapter')))
