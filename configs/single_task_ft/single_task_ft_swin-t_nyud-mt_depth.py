# Single-task full fine-tuning of the ImageNet Swin-T on NYUD-v2 MT, task depth only
# (one run per task; tools/make_baselines.py turns the runs into the baselines JSON).
_base_ = ['../_base_/experiments/swin-t_nyud-mt.py']
tasks = ['depth']
model = dict(tasks=tasks, backbone=dict(peft=dict(type='SingleTaskFineTune')))
train_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader = dict(dataset=dict(tasks=tasks))
