# Shared settings of the README demo (tools/run_demo.sh): a small Swin on the synthetic scenes,
# sized so the whole demo runs in ~7 minutes on 2 idle CPU cores.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/adamw_cosine.py',
    '../_base_/datasets/synthetic.py',
    '../_base_/models/swin_t_mmseg.py',
]
all_tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']

model = dict(
    tasks=all_tasks,
    num_classes=8,  # synthetic classes: wall, floor, ceiling, table, box, ball, cylinder, person
    backbone=dict(
        backbone=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                      window_size=6, drop_path_rate=0.0)),
    heads=dict(type='LightMultiScaleHead', channels=32))

max_iters = 300
warmup_iters = 30
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1, save_last=True))

train_dataloader = dict(batch_size=8, num_workers=2)
val_dataloader = dict(batch_size=8, num_workers=2,
                      dataset=dict(tasks=all_tasks))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric', tasks=all_tasks)
test_evaluator = val_evaluator
