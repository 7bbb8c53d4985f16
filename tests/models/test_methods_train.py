"""Every PETL method trains on rendered synthetic scenes: the loss decreases on a fixed batch.

Uses the real pieces end to end: the synthetic renderer + writer, SyntheticMTDataset, the
multi-task pipeline, the method configs in configs/_base_/models, and MultiTaskDenseModel.
"""
import copy

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mtdense.datasets.synthetic import SyntheticDatasetWriter
from mtdense.registry import DATASETS, MODELS
from mtdense.utils import register_all_modules

ROOT = Path(__file__).resolve().parents[2]

TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'depth']
METHODS = ['vmt', 'vmt_lite', 'full_ft', 'single_task_ft', 'decoder_only', 'bitfit',
           'per_task_adapter', 'per_task_lora', 'mtlora', 'mtlora_official']
TINY_SWIN = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2), window_size=4)


@pytest.fixture(scope='module')
def fixed_batch(tmp_path_factory):
    register_all_modules()
    root = str(tmp_path_factory.mktemp('syn'))
    SyntheticDatasetWriter(root, num=4, height=48, width=64, seed=3, val_fraction=0.25).run()
    pipeline = [dict(type='LoadMultiTaskImage'), dict(type='LoadMultiTaskAnnotations'),
                dict(type='MTResize', scale=(48, 64), keep_ratio=False),
                dict(type='PackMultiTaskInputs')]
    ds = DATASETS.build(dict(type='SyntheticMTDataset', data_root=root, split='train',
                             tasks=TASKS, pipeline=pipeline))
    assert len(ds) == 3
    return pseudo_collate([ds[i] for i in range(3)])


def build(method: str):
    cfg = Config.fromfile(str(ROOT / f'configs/_base_/models/swin_t_mmseg_{method}.py'))
    cfg.model.tasks = TASKS
    cfg.model.num_classes = 8
    if cfg.model.heads.type == 'LightMultiScaleHead':
        cfg.model.heads.channels = 16
    else:  # the official MTLoRA heads: per-level reductions then a 4x wider fusion
        cfg.model.heads.channels = (4, 4, 4, 4)
    cfg.model.backbone.backbone.update(TINY_SWIN)
    peft = cfg.model.backbone.peft
    if method in ('vmt', 'vmt_lite', 'per_task_adapter'):
        peft.bottleneck = 4
    if method in ('per_task_lora', 'mtlora', 'mtlora_official'):
        peft.update({k: 4 for k in ('rank', 'shared_rank', 'task_rank') if k in peft})
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('method', METHODS)
def test_method_trains_on_synthetic_scenes(method, fixed_batch):
    model = build(method)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}

    losses = []
    for _ in range(8):
        data = model.data_preprocessor(copy.deepcopy(fixed_batch), training=True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        assert torch.isfinite(loss), method
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.9 * losses[0], f'{method}: losses {losses}'
    # what the method freezes stays exactly as it was
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f'{method}: frozen parameter {n} changed'
