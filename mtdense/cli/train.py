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
import os.path as osp
from typing import List, Optional

from mmengine.config import Config
from mtdense.cli.run_args import (add_data_options, apply_config_options,
                                  check_and_prepare_launch, checkpoint_errors_exit,
                                  parse_with_launch_options, run_tool)
from mtdense.engine.config_tools import check_total_batch, set_iters
from mtdense.engine.launch import finalize_distributed, launch_world_size
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
    add_data_options(parser)
    parser.add_argument('--iters', type=int, help='train this many iterations: sets the loop, '
                        'validation and checkpoint intervals and scales the lr schedule')
    return parse_with_launch_options(
        parser, argv, 'override config settings, e.g. train_cfg.max_iters=100')


def main(argv: Optional[List[str]] = None) -> int:
    return run_tool('train', _main, parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    register_all_modules()
    cfg = Config.fromfile(resolve_config(args.config))
    apply_config_options(cfg, args)
    if args.iters is not None:
        set_iters(cfg, args.iters)

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
        with checkpoint_errors_exit('train'):
            check_checkpoint_safe(cfg.load_from)

    check_and_prepare_launch(cfg, args.launcher)
    check_total_batch(cfg, launch_world_size(args.launcher))
    runner = build_runner(cfg)
    with checkpoint_errors_exit('train'):
        runner.train()
    # a clean distributed shutdown before the interpreter exits (gloo SIGABRT otherwise)
    finalize_distributed()
    return 0
