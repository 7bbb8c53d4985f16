"""The ``mtdense`` command: one entry point, one subcommand per tool.

    mtdense train vmt/vmt_swin-t_pascal-mt --iters 100
    mtdense test CONFIG CKPT --eval-protocol resized
    mtdense list-configs

Each subcommand is a module of this package with ``main(argv)``; ``tools/<name>.py``
are thin wrappers of the same functions (mmseg's ``python tools/train.py`` convention).
Configs may be given as files or as zoo names (``mtdense list-configs``).
"""
from __future__ import annotations

import importlib
import sys
from typing import List, Optional

#: subcommand -> (module under mtdense.cli, one-line description)
COMMANDS = {
    'train': ('train', 'train a model from a config'),
    'test': ('test', 'evaluate a checkpoint (metrics, panels, predictions)'),
    'infer': ('infer', 'predict images / folders and write panels and raw outputs'),
    'benchmark': ('benchmark_methods', 'train and evaluate every PETL method on one backbone'),
    'profile': ('profile_tasks', 'speed, memory, FLOPs and parameters versus the number of tasks'),
    'make-synthetic': ('make_synthetic', 'render the synthetic scenes (mtdense or release layout)'),
    'browse': ('browse_dataset', 'write panels of dataset samples'),
    'check-dataset': ('check_dataset', 'decode every file of a dataset, list the defects'),
    'analyze-params': ('analyze_params', 'count (trainable) parameters of a config'),
    'export-peft': ('export_peft', 'export the trained state of a checkpoint without the backbone'),
    'make-baselines': ('make_baselines', 'turn single-task runs into a baselines JSON for Δm'),
    'extract-backbone': ('extract_backbone', "a trained model's backbone in its library's keys"),
    'convert-mobilenetv2': ('convert_mobilenetv2', 'ImageNet MobileNetV2 weights to timm keys'),
    'report': ('demo_report', "compare runs' metrics JSONs with Δm"),
    'list-configs': (None, 'print the config names of the zoo'),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ['usage: mtdense <command> [args ...]   (mtdense <command> --help for its options)',
             '', 'commands:']
    lines += [f'  {name:<{width}}  {desc}' for name, (_, desc) in COMMANDS.items()]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ('-V', '--version'):
        from mtdense.version import __version__
        print(f'mtdense {__version__}')
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f'mtdense: unknown command {command!r}\n\n{_usage()}', file=sys.stderr)
        return 2
    module_name = COMMANDS[command][0]
    if module_name is None:  # list-configs
        from mtdense.utils.config_names import list_configs
        print('\n'.join(list_configs()))
        return 0
    module = importlib.import_module(f'mtdense.cli.{module_name}')
    sys.argv = [f'mtdense {command}', *rest]  # argparse's prog in messages
    code = module.main(rest)
    return code if isinstance(code, int) else 0
