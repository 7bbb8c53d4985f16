# NYUD-v2 multi-task (NYUD_MT release; download it yourself to data/NYUD_MT). 480x640 images.
dataset_type = 'NYUDv2MTDataset'
data_root = 'data/NYUD_MT'
tasks = ['semseg', 'depth', 'normals']
crop_size = (448, 576)

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomResize', scale=(480, 640), ratio_range=(0.75, 1.25)),
    dict(type='MTRandomCrop', crop_size=crop_size),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTPhotoMetricDistortion'),
    dict(type='MTPad', size=crop_size),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
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
val_evaluator = dict(type='MultiTaskMetric', tasks=tasks)
test_evaluator = val_evaluator
