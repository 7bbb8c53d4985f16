"""Evaluate a multi-task checkpoint: per-task table, metrics JSON, optional panels.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
                         [--show-dir DIR] [--cfg-options k=v ...] [--launcher ...]
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.dist import get_rank
from mmengine.runner import Runner

from mtdense.apis import dataset_meta_from_config, fill_num_classes
from mtdense.engine.launch import prepare_launcher
from mtdense.utils import register_all_modules


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate an mtdense checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (loaded with weights_only=True)')
    parser.add_argument('--work-dir', help='directory for logs and the metrics file')
    parser.add_argument('--out', help='metrics JSON path (default: WORK_DIR/metrics.json)')
    parser.add_argument('--show-dir', help='write image/GT/prediction panels to this directory')
    parser.add_argument('--show-num', type=int, default=8, help='panels to write with --show-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')
    # Refuse checkpoints that would unpickle arbitrary objects before building anything
    # (loading itself is weights-only too: mtdense.engine.checkpoint).
    from mtdense.engine.checkpoint import UnsafeCheckpointError, check_checkpoint_safe
    try:
        check_checkpoint_safe(args.checkpoint)
    except UnsafeCheckpointError as e:
        sys.exit(f'tools/test.py: error: {e}')
    register_all_modules()  # after the checks: importing mmseg/timm takes seconds
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        cfg.setdefault('custom_hooks', [])
        cfg.custom_hooks.append(dict(type='MultiTaskVisualizationHook', out_dir=args.show_dir,
                                     max_samples=args.show_num))
    if cfg.get('model', {}).get('num_classes', 0) is None:
        # e.g. semseg classes of the synthetic data live in its meta.json
        fill_num_classes(cfg, dataset_meta_from_config(cfg))
    prepare_launcher(cfg, args.launcher)

    runner = Runner.from_cfg(cfg)
    metrics = runner.test()

    if get_rank() == 0:
        from mtdense.evaluation import format_table
        print(format_table(metrics))
        out = args.out or osp.join(cfg.work_dir, 'metrics.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        print(f'metrics written to {out}')


if __name__ == '__main__':
    main()
