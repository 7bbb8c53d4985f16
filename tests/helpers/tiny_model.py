"""A tiny real model for the inference tests: the repository's VMT-Adapter config shrunk
to a 1-block-per-stage Swin (embed_dims 16, window 4) on 48 x 64 synthetic scenes, and a
checkpoint of it. Built once per session by the ``tiny_setup`` fixture (tests/conftest.py)."""
from __future__ import annotations

import os.path as osp

import torch

from helpers import ROOT

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
H, W = 48, 64

CONFIG_TEMPLATE = """
_base_ = [
    '{root}/configs/_base_/default_runtime.py', '{root}/configs/_base_/datasets/synthetic.py',
    '{root}/configs/_base_/models/swin_t_mmseg_vmt.py',
    '{root}/configs/_base_/schedules/adamw_cosine.py',
]
data_root = {data_root!r}
tasks = {tasks!r}
# Upscaled to 64 x 85 (network input padded to 64 x 96): predictions must come back at 48 x 64.
test_pipeline = [
    dict(type='LoadMultiTaskImage'),
    dict(type='MTResize', scale=(96, 64), keep_ratio=True),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs'),
]
loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
train_dataloader = dict(loader, dataset=dict(data_root=data_root, tasks=tasks))
val_dataloader = dict(loader, dataset=dict(data_root=data_root, split='train', tasks=tasks,
                                           pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric', tasks=tasks)
test_evaluator = val_evaluator
model = dict(
    tasks=tasks,
    backbone=dict(backbone=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                                window_size=4, mlp_ratio=2),
                  peft=dict(bottleneck=4)),
    heads=dict(channels=8))
"""


def make_tiny_setup(root: str) -> dict:
    """Write 4 synthetic 48 x 64 scenes, a tiny config and a checkpoint under ``root``.

    The checkpoint's weights are randomised (so predictions are not trivially
    constant) and its meta holds renamed classes, to tell them from the config's.
    Returns ``dict(data_root, config, checkpoint, classes, state_dict)``.
    """
    from mtdense.apis import init_model
    from mtdense.datasets.synthetic import SyntheticDatasetWriter

    data_root = osp.join(root, 'synthetic')
    SyntheticDatasetWriter(data_root, 4, H, W, seed=0, val_fraction=0.25).run(progress=False)
    config = osp.join(root, 'tiny_vmt.py')
    with open(config, 'w') as f:
        f.write(CONFIG_TEMPLATE.format(root=ROOT, data_root=data_root, tasks=TASKS))
    torch.manual_seed(0)  # the frozen backbone is randomly initialised: keep it reproducible
    model = init_model(config)  # num_classes from the synthetic meta.json
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Adapters start at zero and the untrained heads are bias-dominated: large random
            # weights and small biases make every output vary over the image.
            if p.requires_grad and p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=gen))
            elif p.requires_grad and name.endswith('bias'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    classes = [f'cls{i}' for i in range(len(model.dataset_meta['classes']))]
    palette = [[(37 * i) % 256, (91 * i + 50) % 256, (53 * i + 100) % 256]
               for i in range(len(classes))]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = osp.join(root, 'tiny_vmt.pth')
    torch.save({'state_dict': state,
                'meta': {'dataset_meta': {'classes': classes, 'palette': palette}}}, checkpoint)
    return dict(data_root=data_root, config=config, checkpoint=checkpoint, classes=classes,
                palette=palette, state_dict=state)


def image_path(setup: dict, idx: int = 0) -> str:
    """The ``idx``-th synthetic scene image of a :func:`make_tiny_setup` result."""
    return osp.join(setup['data_root'], 'images', f'{idx:06d}.png')
