# Embedded synthetic scenes (tools/make_synthetic.py), all five tasks, read from disk with
# the same decoders as NYUD-v2. Generate first:
#   python tools/make_synthetic.py --num 400 --size 96 128 --seed 0 --out data/synthetic
_base_ = ['./dataloaders.py']
dataset_type = 'SyntheticMTDataset'
data_root = 'data/synthetic'
tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
crop_size = (96, 96)

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomResize', scale=(96, 128), ratio_range=(0.8, 1.25)),
    dict(type='MTRandomCrop', crop_size=crop_size),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTPhotoMetricDistortion'),
    dict(type='MTPad', size=crop_size),
    dict(type='PackMultiTaskInputs'),
]
# Ground truth is loaded after resizing so metrics are computed at original resolution.
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTResize', scale=(96, 128), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]

train_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(type=dataset_type, data_root=data_root, tasks=tasks, pipeline=train_pipeline))
val_dataloader = dict(num_workers=2,
                      dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=tasks)
test_evaluator = val_evaluator
