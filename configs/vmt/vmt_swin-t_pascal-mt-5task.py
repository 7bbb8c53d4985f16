# VMT-Adapter on 5-task PASCAL-Context MT (with edge detection); frozen ImageNet Swin-T.
_base_ = ['../_base_/experiments/swin-t_pascal-mt-5task.py']
model = dict(backbone=dict(peft=dict(type='VMTAdapter')))
