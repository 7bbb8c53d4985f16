"""What ``mtdense train`` and ``mtdense test`` share: the options that prepare a config
(--data-root, --vis, --cfg-options, --launcher), the checks made before the Runner is
built, and how a mistake in the config or a bad checkpoint ends the tool (one
``mtdense <tool>: error: ...`` line, exit status 1).

Kept in one place so that an option or a check added for one tool reaches the other.
"""
import argparse
import os
import os.path as osp
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

from mmengine.config import Config, DictAction
from mtdense.apis import dataset_meta_from_config, fill_num_classes
from mtdense.engine.checkpoint import CheckpointMismatchError, CheckpointReadError
from mtdense.engine.config_tools import (ConfigError, check_cfg_options, check_hook_configs,
                                         check_num_classes, set_data_root, set_vis_backends)
from mtdense.engine.launch import prepare_launcher


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--data-root and --vis."""
    parser.add_argument('--data-root', help='dataset root of every dataloader (overrides the '
                        "config's data_root)")
    parser.add_argument('--vis', nargs='+', metavar='BACKEND',
                        help='where scalars and panels are logged: local tensorboard wandb '
                        '(default: the config\'s visualizer, local files)')


def parse_with_launch_options(parser: argparse.ArgumentParser, argv: Optional[List[str]],
                              cfg_options_help: str) -> argparse.Namespace:
    """Add the last options of both tools (--cfg-options, --launcher, --local_rank) and parse
    ``argv``; a launcher that passes --local_rank instead of setting LOCAL_RANK
    (torch.distributed.launch) still gets it into the environment mmengine reads."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def run_tool(tool: str, body: Callable[[argparse.Namespace], int],
             args: argparse.Namespace) -> int:
    """``body(args)``; a ConfigError (a mistake in the config or the options: the message
    says which) ends the tool with one error line."""
    try:
        return body(args)
    except ConfigError as e:
        raise SystemExit(f'mtdense {tool}: error: {e}')


@contextmanager
def checkpoint_errors_exit(tool: str) -> Iterator[None]:
    """A checkpoint that is unsafe, truncated, damaged, not a checkpoint or does not match
    the model ends the tool with one error line instead of a traceback."""
    try:
        yield
    except (CheckpointMismatchError, CheckpointReadError) as e:
        sys.exit(f'mtdense {tool}: error: {e}')


def apply_config_options(cfg: Config, args: argparse.Namespace) -> None:
    """--cfg-options (checked against the config first), --data-root, --vis, then the work
    dir: --work-dir, the config's, or ./work_dirs/<config name>."""
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root)
    if args.vis is not None:
        set_vis_backends(cfg, args.vis)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])


def check_and_prepare_launch(cfg: Config, launcher: str) -> None:
    """Mistakes that used to surface hours in, caught before anything is built; then the
    launcher's distributed settings."""
    check_hook_configs(cfg)
    dataset_meta = dataset_meta_from_config(cfg)
    if cfg.get('model', {}).get('num_classes', 0) is None:
        # e.g. semseg classes of the synthetic data live in its meta.json
        fill_num_classes(cfg, dataset_meta)
    check_num_classes(cfg, dataset_meta)
    prepare_launcher(cfg, launcher)
