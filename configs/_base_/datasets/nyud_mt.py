# NYUD-v2 multi-task (NYUD_MT release; download it yourself to data/NYUD_MT, check it with
# tools/browse_dataset.py). 795 train / 654 val images of 480 x 640. Sizes are (h, w).
#
# Training: random rescale by 1.0-1.5, random 448 x 576 crop, horizontal flip, photometric
# distortion, pad to 448 x 576. Testing at the native 480 x 640 (MTTestResize keeps it, MTPad
# fixes the network input size); ground truth at the original resolution ('native').
_base_ = ['./dataloaders.py']
dataset_type = 'NYUDv2MTDataset'
data_root = 'data/NYUD_MT'
tasks = ['semseg', 'depth', 'normals']
num_classes = 40
crop_size = (448, 576)  # (h, w)
test_size = (480, 640)  # (h, w)

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomResize', scale=test_size, ratio_range=(1.0, 1.5)),
    dict(type='MTRandomCrop', crop_size=crop_size),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTPhotoMetricDistortion'),
    dict(type='MTPad', size=crop_size),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTTestResize', scale=test_size, keep_ratio=True, protocol='native'),
    dict(type='MTPad', size=test_size),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, tasks=tasks,
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader
