# Single-task full fine-tuning of the ImageNet Swin-T on PASCAL-Context MT, task normals only
# (one run per task; tools/make_baselines.py turns the runs into the baselines JSON).
_base_ = ['../_base_/experiments/swin-t_pascal-mt.py']
tasks = ['normals']
model = dict(tasks=tasks, backbone=dict(peft=dict(type='SingleTaskFineTune')))
train_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader = dict(dataset=dict(tasks=tasks))
