# PASCAL-Context multi-task (ASTMT PASCAL_MT release; download it yourself to data/PASCAL_MT).
# MTLoRA protocol: 448x448 training crops, evaluation at original resolution.
dataset_type = 'PascalContextMTDataset'
data_root = 'data/PASCAL_MT'
tasks = ['semseg', 'human_parts', 'saliency', 'normals']
crop_size = (448, 448)

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomResize', scale=(448, 448), ratio_range=(0.75, 1.5)),
    dict(type='MTRandomCrop', crop_size=crop_size),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTPhotoMetricDistortion'),
    dict(type='MTPad', size=crop_size),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTResize', scale=(448, 448), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', tasks=tasks,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', tasks=tasks,
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric', tasks=tasks,
                     baselines='configs/baselines/pascal_context_swin_t_single_task.json')
test_evaluator = val_evaluator
