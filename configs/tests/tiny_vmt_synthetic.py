# A tiny complete experiment for CI and smoke tests: a 4-stage mmseg Swin with one block of
# width 16 per stage (randomly initialised), VMT-Adapter, all five synthetic tasks, 64x64
# crops, batch 2, 8 iterations, validation at the end. Runs on CPU in seconds.
#
#   python tools/make_synthetic.py --num 8 --size 48 64 --out data/synthetic_tiny
#   python tools/train.py configs/tests/tiny_vmt_synthetic.py --work-dir work_dirs/tiny
#   python tools/test.py configs/tests/tiny_vmt_synthetic.py work_dirs/tiny/iter_8.pth
_base_ = [
    '../_base_/models/swin_t_mmseg_vmt.py',
    '../_base_/datasets/synthetic.py',
    '../_base_/schedules/adamw_cosine.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/synthetic_tiny'
tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
crop_size = (64, 64)
num_classes = 8  # synthetic classes: wall, floor, ceiling, table, box, ball, cylinder, person
max_iters = 8
warmup_iters = 2

model = dict(
    tasks=tasks,
    num_classes=num_classes,
    backbone=dict(
        # drop path on: resuming must reproduce its random draws (SafeCheckpointHook RNG state)
        backbone=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=4,
                      drop_path_rate=0.1),
        peft=dict(type='VMTAdapter', bottleneck=4)),
    heads=dict(type='LightMultiScaleHead', channels=16))

# 48x64 images are upscaled to 64x85 (short edge 64) before the 64x64 crop.
train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomResize', scale=(85, 64), ratio_range=(1.0, 1.25)),
    dict(type='MTRandomCrop', crop_size=crop_size),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTPhotoMetricDistortion'),
    dict(type='MTPad', size=crop_size),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTResize', scale=(85, 64), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]

# num_workers=0: data is loaded in the main process (deterministic and cheap for 8 images).
# Samplers, dataset type and splits: ../_base_/datasets/synthetic.py.
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(train_dataloader,
                      dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=tasks)
test_evaluator = val_evaluator

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=-1,
                    save_last=True))
