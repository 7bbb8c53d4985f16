# PASCAL-Context multi-task (ASTMT PASCAL_MT release; download it yourself to data/PASCAL_MT,
# check it with tools/browse_dataset.py). 4998 train / 5105 val images of varied sizes
# (long side 500). Sizes are (h, w) in every mtdense transform.
#
# Training follows the MTLoRA / ASTMT code: random horizontal flip, rotation in [-20, 20]
# degrees with a zoom in [0.75, 1.25] about the centre on the same canvas ("ScaleNRotate"),
# then a fixed resize of image and labels to 448 x 448 (aspect ratio not kept).
# Testing: the image is resized to 448 x 448 the same way; MTTestResize's protocol decides
# where metrics are computed: 'native' (default, ground truth at the original resolution,
# predictions resized back) or 'resized' (ground truth resized to 448 x 448, the protocol of
# the MTLoRA / Polyhistor tables): tools/test.py --eval-protocol resized.
_base_ = ['./dataloaders.py']
dataset_type = 'PascalContextMTDataset'
data_root = 'data/PASCAL_MT'
tasks = ['semseg', 'human_parts', 'saliency', 'normals']
num_classes = 21  # semseg: 20 VOC classes + background
crop_size = (448, 448)  # (h, w) network input

train_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='MTRandomFlip', prob=0.5),
    dict(type='MTRandomRotate', prob=1.0, degree=20, zoom=(0.75, 1.25)),
    dict(type='MTResize', scale=crop_size, keep_ratio=False),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTTestResize', scale=crop_size, keep_ratio=False, protocol='native'),
    # every test image has the same network input size: metrics do not depend on the batch
    dict(type='MTPad', size=crop_size),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, tasks=tasks,
                                     pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(train_dataloader['dataset'], pipeline=test_pipeline))
test_dataloader = val_dataloader
# Δm against the published single-task rows (evaluated under their protocol: Δm is reported
# with --eval-protocol resized --saliency-protocol astmt only); path relative to this file
val_evaluator = dict(
    type='MultiTaskMetric',
    baselines='{{fileDirname}}/../../baselines/pascal_context_swin_t_single_task.json')
test_evaluator = val_evaluator
