# Common model of the PETL comparisons: mmseg Swin-T (frozen, wrapped unchanged), one PETL
# method (set by the files that inherit this one), one LightMultiScaleHead per task.
#
# Set in the experiment config:
#   model = dict(tasks=[...], num_classes=<dataset classes>,
#                backbone=dict(checkpoint='path/to/swin_tiny_patch4_window7_224.pth'))
# (official / timm / mmseg key formats load unchanged; without a checkpoint the backbone is
# randomly initialised). The backbone receives the model's task list automatically.
model = dict(
    type='MultiTaskDenseModel',
    data_preprocessor=dict(
        type='MultiTaskDataPreprocessor',
        mean=[123.675, 116.28, 103.53],  # ImageNet, RGB
        std=[58.395, 57.12, 57.375],
        size_divisor=32),
    tasks=['semseg', 'human_parts', 'saliency', 'normals'],
    num_classes=None,  # semseg classes: from the dataset (e.g. 21 for PASCAL-Context MT)
    backbone=dict(
        type='AdaptedBackbone',
        backbone=dict(
            type='MMSegSwin',
            embed_dims=96,
            depths=(2, 2, 6, 2),
            num_heads=(3, 6, 12, 24),
            window_size=7,
            drop_path_rate=0.0),
        peft=dict(type='VMTAdapter'),
        checkpoint=None),
    heads=dict(type='LightMultiScaleHead', channels=64),
    # Losses: each task's default (CE, balanced BCE, normals L1, depth L1, edge BCE with
    # positive weight 0.95); override per task with
    # losses=dict(depth=dict(type='DepthSiLogLoss')) and depth_activation='softplus'.
    # Default loss weights: semseg 1, human_parts 2, saliency 5, normals 10, depth 1, edge 50
    # (override e.g. loss_weights=dict(normals=5.0); keys must be model tasks).
    uncertainty_weighting=False,
    align_corners=False)
