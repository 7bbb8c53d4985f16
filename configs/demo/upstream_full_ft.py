# Demo step 1: the "upstream" pretrained backbone — full multi-task training of the small Swin
# from scratch on part of the tasks (semseg + depth). Its backbone is then frozen and adapted.
_base_ = ['./demo_base.py']
upstream_tasks = ['semseg', 'depth']
model = dict(tasks=upstream_tasks, backbone=dict(peft=dict(type='FullFineTune')))

max_iters = 500
warmup_iters = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(checkpoint=dict(interval=max_iters))
train_dataloader = dict(dataset=dict(tasks=upstream_tasks))
val_dataloader = dict(dataset=dict(tasks=upstream_tasks))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=upstream_tasks)
test_evaluator = val_evaluator
