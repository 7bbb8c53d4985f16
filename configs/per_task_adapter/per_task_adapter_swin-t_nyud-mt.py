# per-task parallel adapters (AdaptFormer-style), one backbone pass per task; frozen ImageNet Swin-T, NYUD-v2 MT.
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
model = dict(backbone=dict(peft=dict(type='PerTaskAdapter')))
