"""Count the parameters of a multi-task model built from an mmengine config.

Examples:
    python tools/analyze_params.py configs/_base_/models/swin_t_mmseg_vmt.py
    python tools/analyze_params.py CONFIG --cfg-options model.tasks="['semseg','depth']"
    python tools/analyze_params.py CONFIG --json params.json     # or --json - for stdout

Reports total / trainable parameters, the wrapped (pretrained) backbone's size,
the trainable share of the backbone side (PETL method, trainable backbone
parameters, neck) in % of the backbone, per-task trainable parameters (task
head + parameters of the backbone method used by that task only) and the
parameters shared by all tasks. Nothing is run. The configured pretrained weights are
loaded (a quick check of the file before a long run: a file that does not fit the
backbone fails with its mismatched keys); ``--cfg-options model.backbone.checkpoint=None``
counts without them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Optional

from mmengine.config import Config, DictAction

from mtdense.tasks import get_task


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='mmengine config file with a `model` dict')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. model.tasks="[\'semseg\']"')
    parser.add_argument('--num-classes', type=int, default=None,
                        help='semantic classes when the config leaves model.num_classes unset '
                             '(default: the dataset class\'s METAINFO, if it has one)')
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='also write the report as JSON to PATH ("-" for stdout, which '
                             'then replaces the table)')
    return parser.parse_args(argv)


def _fill_num_classes(cfg: Config, num_classes: Optional[int]) -> None:
    """Set ``model.num_classes`` from the flag or the dataset class if the model needs it."""
    model = cfg.model
    if num_classes is not None:
        model['num_classes'] = num_classes
        return
    if model.get('num_classes') is not None:
        return
    needs = [t for t in model.get('tasks', []) if get_task(t).num_channels is None]
    if not needs:
        return
    dataset_type = cfg.get('train_dataloader', {}).get('dataset', {}).get('type')
    if dataset_type is not None:
        from mtdense.registry import DATASETS
        cls = DATASETS.get(dataset_type)
        classes = getattr(cls, 'METAINFO', {}).get('classes') if cls is not None else None
        if classes:
            model['num_classes'] = len(classes)
            return
    raise SystemExit(f'analyze_params: tasks {needs} need the number of classes: set '
                     'model.num_classes in the config, pass --cfg-options model.num_classes=N '
                     'or --num-classes N')


def build_model(cfg: Config):
    from mtdense.registry import MODELS
    from mtdense.utils import register_all_modules
    register_all_modules()
    if 'model' not in cfg:
        raise SystemExit(f'analyze_params: {cfg.filename} has no `model` dict')
    return MODELS.build(cfg.model)


def analyze(model) -> Dict[str, Any]:
    """Flat report of a built ``MultiTaskDenseModel``."""
    if not hasattr(model, 'parameter_report'):
        raise SystemExit(f'analyze_params: expected a MultiTaskDenseModel, built '
                         f'{type(model).__name__}')
    rep = model.parameter_report()
    bb = rep.get('backbone_report')
    out: Dict[str, Any] = OrderedDict()
    out['model'] = type(model).__name__
    out['backbone'] = type(model.backbone).__name__
    out['method'] = bb['method'] if bb else None
    out['tasks'] = list(model.tasks)
    out['total'] = rep['total']
    out['trainable'] = rep['trainable']
    # The wrapped pretrained backbone alone (one copy), the reference for percentages.
    backbone_ref = bb['backbone_total'] if bb else rep['backbone_total']
    out['backbone_params'] = backbone_ref
    out['backbone_side_total'] = rep['backbone_total']
    out['backbone_side_trainable'] = rep['backbone_trainable']
    out['backbone_side_trainable_percent'] = 100.0 * rep['backbone_trainable'] / max(backbone_ref, 1)
    out['trainable_percent_of_backbone'] = 100.0 * rep['trainable'] / max(backbone_ref, 1)
    if bb:
        out['backbone_trainable'] = bb['backbone_trainable']
        out['method_params'] = bb['method_total']
        out['method_trainable'] = bb['method_trainable']
        out['neck_params'] = bb['neck_total']
        out['backbone_copies'] = bb['backbone_copies_total']
    heads_trainable = {t: rep['heads'][t]['trainable'] for t in model.tasks}
    out['heads_total'] = sum(rep['heads'][t]['total'] for t in model.tasks)
    out['heads_trainable'] = sum(heads_trainable.values())
    out['loss_trainable'] = rep['losses_trainable']
    bb_task = dict(bb['per_task_trainable']) if bb else {}
    per_task = OrderedDict()
    for t in model.tasks:
        per_task[t] = OrderedDict(head=heads_trainable[t], backbone=bb_task.get(t, 0) if bb else None,
                                  total=heads_trainable[t] + bb_task.get(t, 0))
    out['per_task_trainable'] = per_task
    ckpt = getattr(model.backbone, 'checkpoint_report', None)
    if not ckpt:
        out['pretrained_weights'] = None
    elif 'format' in ckpt:  # transformer hosts (mtdense.models.backbones.checkpoint)
        out['pretrained_weights'] = (f"{ckpt['source']} ({ckpt['format']} keys -> "
                                     f"{ckpt['converted_to']})")
    else:  # conv backbones (timm state dict)
        out['pretrained_weights'] = f"{ckpt['path']} ({ckpt['loaded']} tensors)"
    # Trainable parameters on the backbone side that no single task owns.
    out['shared_trainable'] = (rep['backbone_trainable'] - sum(bb_task.values())
                               + rep['losses_trainable'])
    return out


def _fmt(n: Optional[int]) -> str:
    if n is None:
        return 'n/a'
    return f'{n:,}' if n < 10_000 else f'{n:,} ({n / 1e6:.3f} M)'


def format_table(r: Dict[str, Any]) -> str:
    rows = [
        ('model', r['model']),
        ('backbone', r['backbone'] + (f" + {r['method']}" if r['method'] else '')),
        ('tasks', ', '.join(r['tasks'])),
        ('total parameters', _fmt(r['total'])),
        ('trainable parameters', f"{_fmt(r['trainable'])}  = {r['trainable_percent_of_backbone']:.3f}% "
                                 'of the backbone'),
        ('backbone (wrapped, pretrained)', _fmt(r['backbone_params'])),
        ('pretrained weights', r['pretrained_weights'] or 'none (random initialisation)'),
        ('backbone side trainable', f"{_fmt(r['backbone_side_trainable'])}  = "
                                    f"{r['backbone_side_trainable_percent']:.3f}% of the backbone"),
    ]
    if 'method_params' in r:
        rows += [
            ('  PETL method parameters', _fmt(r['method_params'])),
            ('  trainable backbone parameters', _fmt(r['backbone_trainable'])),
            ('  neck', _fmt(r['neck_params'])),
            ('  per-task backbone copies', _fmt(r['backbone_copies'])),
        ]
    rows += [
        ('heads (all tasks) trainable', _fmt(r['heads_trainable'])),
        ('loss (uncertainty) trainable', _fmt(r['loss_trainable'])),
        ('shared trainable (no single task)', _fmt(r['shared_trainable'])),
    ]
    for t, c in r['per_task_trainable'].items():
        rows.append((f'task {t}: head + backbone', f"{_fmt(c['head'])} + {_fmt(c['backbone'])} "
                                                   f"= {_fmt(c['total'])}"))
    width = max(len(k) for k, _ in rows)
    line = '-' * (width + 40)
    return '\n'.join([line] + [f'{k:<{width}}  {v}' for k, v in rows] + [line])


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    import mtdense  # noqa: F401  (mmcv.ops stand-in before configs import mmseg)
    from mtdense.utils.config_names import resolve_config
    cfg = Config.fromfile(resolve_config(args.config))  # a file or a zoo name
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'model' not in cfg:
        raise SystemExit(f'analyze_params: {args.config} has no `model` dict')
    _fill_num_classes(cfg, args.num_classes)
    # Build-time chatter (e.g. mmseg's "No pre-trained weights" print) goes to stderr so
    # that stdout holds only the report (and stays valid JSON with --json -).
    with contextlib.redirect_stdout(sys.stderr):
        model = build_model(cfg)
    report = analyze(model)
    if args.json == '-':
        print(json.dumps(report, indent=2))
        return report
    print(format_table(report))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.json}')
    return report
