# Multi-task full fine-tuning on 5-task PASCAL-Context MT (with edge detection); Swin-T.
_base_ = ['../_base_/experiments/swin-t_pascal-mt-5task.py']
model = dict(backbone=dict(peft=dict(type='FullFineTune')))
