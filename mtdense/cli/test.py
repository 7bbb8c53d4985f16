"""Evaluate a multi-task checkpoint: per-task table, metrics JSON, optional panels.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--metrics-out metrics.json]
                         [--out PREDICTIONS_DIR]
                         [--show-dir DIR] [--eval-protocol native|resized]
                         [--saliency-protocol mtdense|astmt] [--baselines FILE]
                         [--non-strict] [--data-root DIR]
                         [--cfg-options k=v ...] [--launcher ...]

The checkpoint must match the model of CONFIG exactly (keys and shapes; --non-strict
loads the matching keys only). It holds every weight, so the config's pretrained
backbone file is not read (it need not exist).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config
from mmengine.dist import get_rank
from mtdense.cli.run_args import (add_data_options, apply_config_options,
                                  check_and_prepare_launch, checkpoint_errors_exit,
                                  parse_with_launch_options, run_tool)
from mtdense.engine.config_tools import (drop_pretrained_paths, eval_protocol_of,
                                         set_eval_protocol, set_saliency_protocol)
from mtdense.engine.launch import finalize_distributed
from mtdense.engine.runner import build_runner
from mtdense.utils import register_all_modules
from mtdense.utils.config_names import resolve_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate an mtdense checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (loaded with weights_only=True)')
    parser.add_argument('--work-dir', help='directory for logs and the metrics file')
    parser.add_argument('--out', metavar='DIR',
                        help="write every sample's predictions to DIR (one compressed .npz per "
                        "image: labels uint8, maps float16), as mmseg's --out")
    parser.add_argument('--metrics-out', metavar='FILE',
                        help='metrics JSON path (default: WORK_DIR/metrics.json)')
    parser.add_argument('--show-dir', help='write image/GT/prediction panels to this directory')
    parser.add_argument('--show-num', type=int, default=8, help='panels to write with --show-dir')
    parser.add_argument('--eval-protocol', choices=['native', 'resized'],
                        help="where metrics are computed: 'native' (ground truth at its original "
                        "resolution) or 'resized' (ground truth resized to the network input, as "
                        'the MTLoRA / Polyhistor tables); default: the config\'s MTTestResize')
    parser.add_argument('--saliency-protocol', choices=['mtdense', 'astmt'],
                        help="saliency precision/recall of an image whose prediction and ground "
                        "truth are both empty: 1 ('mtdense', default) or 0 ('astmt', as the "
                        'ASTMT-lineage code behind published tables)')
    add_data_options(parser)
    parser.add_argument('--baselines', help='baselines JSON for Δm (tools/make_baselines.py); '
                        "overrides the evaluator's")
    parser.add_argument('--non-strict', action='store_true',
                        help='load only the checkpoint keys that match the model (default: any '
                        'missing, unexpected or mis-shaped key is an error); the pretrained '
                        'backbone file of the config is then read for the rest')
    return parse_with_launch_options(parser, argv, 'override config settings')


def main(argv: Optional[List[str]] = None) -> int:
    return run_tool('test', _main, parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    args.config = resolve_config(args.config)  # a file, or a zoo name like vmt/vmt_swin-t_pascal-mt
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')
    # Refuse checkpoints that would unpickle arbitrary objects before building anything
    # (loading itself is weights-only too: mtdense.engine.checkpoint).
    from mtdense.engine.checkpoint import check_checkpoint_safe
    with checkpoint_errors_exit('test'):
        check_checkpoint_safe(args.checkpoint)
    register_all_modules()  # after the checks: importing mmseg/timm takes seconds
    cfg = Config.fromfile(args.config)
    apply_config_options(cfg, args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    cfg.load_strict = not args.non_strict
    if cfg.load_strict:
        dropped = drop_pretrained_paths(cfg.model)
        if dropped:
            print(f'tools/test.py: the checkpoint holds every weight; not reading {dropped}')
    if args.eval_protocol is not None:
        set_eval_protocol(cfg, args.eval_protocol)
    if args.saliency_protocol is not None:
        set_saliency_protocol(cfg, args.saliency_protocol)
    if args.baselines is not None:
        if not osp.isfile(args.baselines):
            sys.exit(f'mtdense test: error: baselines file not found: {args.baselines}')
        for key in ('val_evaluator', 'test_evaluator'):
            cfg[key]['baselines'] = args.baselines
    if args.out:
        cfg.setdefault('custom_hooks', [])
        cfg.custom_hooks.append(dict(type='PredictionWriterHook', out_dir=args.out))
    if args.show_dir:
        cfg.setdefault('custom_hooks', [])
        cfg.custom_hooks.append(dict(type='MultiTaskVisualizationHook', out_dir=args.show_dir,
                                     max_samples=args.show_num))
    check_and_prepare_launch(cfg, args.launcher)

    runner = build_runner(cfg)
    with checkpoint_errors_exit('test'):
        metrics = runner.test()

    if get_rank() == 0:
        from mtdense.evaluation import format_table
        # mmengine's LoggerHook sends validation metrics to the vis backends, not test ones
        runner.visualizer.add_scalars({f'test/{k}': float(v) for k, v in metrics.items()},
                                      step=0)
        if not isinstance(cfg.get('test_evaluator'), dict) or \
                cfg.test_evaluator.get('type') != 'MultiTaskMetric':
            print(format_table(metrics))  # MultiTaskMetric has logged its tables already
        out = args.metrics_out or osp.join(cfg.work_dir, 'metrics.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            evaluator = cfg.get('test_evaluator', {})
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           protocol=dict(eval_protocol=eval_protocol_of(cfg),
                                         saliency_protocol=evaluator.get('saliency_protocol',
                                                                         'mtdense')),
                           metrics={k: float(v) for k, v in metrics.items()}), f, indent=2)
        print(f'metrics written to {out}' + (f'; predictions in {args.out}' if args.out else ''))
    # a clean distributed shutdown before the interpreter exits (gloo SIGABRT otherwise)
    finalize_distributed()
    return 0
