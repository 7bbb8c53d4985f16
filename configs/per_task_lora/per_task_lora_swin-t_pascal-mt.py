# per-task LoRA, one backbone pass per task; frozen ImageNet Swin-T, PASCAL-Context MT.
_base_ = ['../_base_/experiments/swin-t_pascal-mt.py']
model = dict(backbone=dict(peft=dict(type='PerTaskLoRA')))
