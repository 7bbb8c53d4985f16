"""Train a multi-task dense model (mmseg conventions).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--auto-scale-lr] [--non-strict] [--data-root DIR] [--iters N]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

``load_from`` and ``--resume`` checkpoints must match the model exactly (--non-strict
loads the matching keys of a ``load_from`` checkpoint only). Configs of a published
protocol fix the total batch (``auto_scale_lr.base_batch_size``): another
per-process batch x number of processes is refused unless --auto-scale-lr.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mtdense.apis import dataset_meta_from_config, fill_num_classes
from mtdense.engine.checkpoint import CheckpointMismatchError, CheckpointReadError
from mtdense.engine.config_tools import (ConfigError, check_cfg_options, check_hook_configs,
                                         check_num_classes, check_total_batch, set_data_root,
                                         set_iters, set_vis_backends)
from mtdense.engine.launch import finalize_distributed, launch_world_size, prepare_launcher
from mtdense.engine.runner import build_runner
from mtdense.utils import register_all_modules
from mtdense.utils.config_names import resolve_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an mtdense model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or (no value) from the latest checkpoint in '
                        'the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='accept a total batch other than the schedule\'s and scale the '
                        'learning rate linearly to it (mmengine auto_scale_lr)')
    parser.add_argument('--non-strict', action='store_true',
                        help='load_from: load only the checkpoint keys that match the model')
    parser.add_argument('--data-root', help='dataset root of every dataloader (overrides the '
                        "config's data_root)")
    parser.add_argument('--vis', nargs='+', metavar='BACKEND',
                        help='where scalars and panels are logged: local tensorboard wandb '
                        '(default: the config\'s visualizer, local files)')
    parser.add_argument('--iters', type=int, help='train this many iterations: sets the loop, '
                        'validation and checkpoint intervals and scales the lr schedule')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return _main(parse_args(argv))
    except ConfigError as e:  # a mistake in the config or the options: the message says which
        raise SystemExit(f'mtdense train: error: {e}')


def _main(args: argparse.Namespace) -> int:
    register_all_modules()
    cfg = Config.fromfile(resolve_config(args.config))
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root)
    if args.vis is not None:
        set_vis_backends(cfg, args.vis)
    if args.iters is not None:
        set_iters(cfg, args.iters)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA device (mmengine AmpOptimWrapper); '
                               'run without --amp on CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume

    cfg.load_strict = not args.non_strict
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise ValueError(f'--auto-scale-lr: {args.config} sets no '
                             'auto_scale_lr.base_batch_size (the batch its lr is for)')
        cfg.auto_scale_lr.enable = True
    if cfg.get('load_from') and osp.isfile(cfg.load_from):
        # fail before building anything if the file would unpickle arbitrary objects
        from mtdense.engine.checkpoint import check_checkpoint_safe
        try:
            check_checkpoint_safe(cfg.load_from)
        except CheckpointReadError as e:  # unsafe, truncated, damaged, not a checkpoint
            sys.exit(f'mtdense train: error: {e}')

    # mistakes that used to surface hours in, caught before anything is built
    check_hook_configs(cfg)
    dataset_meta = dataset_meta_from_config(cfg)
    if cfg.get('model', {}).get('num_classes', 0) is None:
        # e.g. semseg classes of the synthetic data live in its meta.json
        fill_num_classes(cfg, dataset_meta)
    check_num_classes(cfg, dataset_meta)
    prepare_launcher(cfg, args.launcher)
    check_total_batch(cfg, launch_world_size(args.launcher))
    runner = build_runner(cfg)
    try:
        runner.train()
    except (CheckpointMismatchError, CheckpointReadError) as e:
        sys.exit(f'mtdense train: error: {e}')
    # a clean distributed shutdown before the interpreter exits (gloo SIGABRT otherwise)
    finalize_distributed()
    return 0
