"""Shrinking a real config for a one-iteration smoke run, through the config system only.

The config file is loaded as users load it and edited with the same mechanisms as
``--cfg-options`` / ``--data-root`` / ``--iters``: a tiny backbone of the same type, no
pretrained file, small batches, the fixture tree of the config's dataset type. What is
not shrunk (pipelines, crop and test sizes, schedule shape, losses, evaluator) is what
the run exercises.
"""
from __future__ import annotations

from mmengine.config import Config

from mtdense.engine.config_tools import drop_pretrained_paths, set_data_root, set_iters

#: per backbone host type: architecture keys that make it tiny
TINY_BACKBONES = {
    'MMSegSwin': dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)),
    'TimmSwin': dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)),
    'TimmViT': dict(embed_dim=16, depth=4, num_heads=1),
    'MMSegViT': dict(embed_dims=16, num_layers=4, num_heads=1, out_indices=[0, 1, 2, 3]),
}


def dataset_type(cfg: Config) -> str:
    return cfg.train_dataloader.dataset.type


def shrink(cfg: Config, data_root: str, work_dir: str, iters: int = 1) -> Config:
    """Edit ``cfg`` in place for a one-iteration train + one validation on ``data_root``."""
    backbone = cfg.model.backbone
    host = backbone.get('backbone', {})
    if host.get('type') in TINY_BACKBONES:
        host.update(TINY_BACKBONES[host['type']])
        neck = backbone.get('neck')
        if neck and 'in_channels' in neck:  # a ViT's pyramid neck reads the tiny width
            neck['in_channels'] = [16] * len(neck['in_channels'])
    elif backbone.get('type') not in ('ConvMultiTaskBackbone', 'TimmCNNBaseline'):  # already small
        raise KeyError(f'{cfg.filename}: no tiny settings for backbone {host.get("type")!r}')
    drop_pretrained_paths(cfg.model)
    heads = cfg.model.get('heads', {})
    if 'channels' in heads:
        heads['channels'] = 8
    set_data_root(cfg, data_root)
    set_iters(cfg, iters)
    cfg.train_cfg.val_interval = iters
    for key, batch in (('train_dataloader', 2), ('val_dataloader', 2), ('test_dataloader', 2)):
        cfg[key].update(batch_size=batch, num_workers=0, persistent_workers=False)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=iters, max_keep_ckpts=1)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg
