# Single-task full fine-tuning of the ImageNet Swin-T on PASCAL-Context MT, task edge only
# (the fifth task's baseline for Δm of the 5-task configs; tools/make_baselines.py).
_base_ = ['../_base_/experiments/swin-t_pascal-mt-5task.py']
tasks = ['edge']
model = dict(tasks=tasks, backbone=dict(peft=dict(type='SingleTaskFineTune')))
train_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader = dict(dataset=dict(tasks=tasks))
