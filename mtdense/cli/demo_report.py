"""Compare methods' metrics JSONs (from tools/test.py) with Δm against a baseline run.

    python tools/demo_report.py --baseline single_task_ft=PATH \
        --run vmt=PATH --run decoder_only=PATH ... [--params name=N ...] \
        [--baselines-out baselines.json] [--out report.md]

The baseline run's primary metrics are written as a baselines JSON (with its provenance),
then every run gets a per-task row and Δm (docs/evaluation.md: semseg/parts/saliency mIoU ↑,
normals mErr ↓, depth rmse ↓).
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from mtdense.evaluation.functional import delta_m, primary_metrics
from mtdense.tasks import get_task

COLUMNS = [('semseg', 'mIoU'), ('human_parts', 'mIoU'), ('saliency', 'mIoU'), ('normals', 'mErr'),
           ('depth', 'rmse')]


def _pair(text: str):
    name, sep, value = text.partition('=')
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f'expected NAME=VALUE, got {text!r}')
    return name, value


def load_metrics(path: str) -> Dict[str, float]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'metrics file not found: {path}')
    with open(path) as f:
        data = json.load(f)
    if 'metrics' not in data:
        raise KeyError(f'{path}: no "metrics" key (expected the JSON written by tools/test.py)')
    return data['metrics']


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--baseline', type=_pair, required=True, help='NAME=metrics.json')
    p.add_argument('--run', type=_pair, action='append', default=[], help='NAME=metrics.json')
    p.add_argument('--params', type=_pair, action='append', default=[],
                   help='NAME=trainable parameter count (shown in the table)')
    p.add_argument('--baselines-out', help='write the baseline run as a baselines JSON here')
    p.add_argument('--out', help='also write the markdown table here')
    args = p.parse_args(argv)

    base_name, base_path = args.baseline
    base = primary_metrics(load_metrics(base_path))
    if args.baselines_out:
        os.makedirs(osp.dirname(osp.abspath(args.baselines_out)), exist_ok=True)
        with open(args.baselines_out, 'w') as f:
            json.dump(dict(dataset='synthetic (tools/make_synthetic.py)', backbone='demo Swin',
                           method=base_name,
                           metrics={t: {get_task(t).primary_metric: v}
                                    for t, v in base.items()},
                           source=f'this demo run: {base_path}'), f, indent=2)
    params = dict(args.params)
    header = ['method'] + [f'{t} {m}' + (' ↑' if get_task(t).higher_is_better else ' ↓')
                           for t, m in COLUMNS] + ['Δm (%)', 'trainable params']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, path in [args.baseline] + args.run:
        prim = primary_metrics(load_metrics(path))
        cells = [name] + [f'{prim[t]:.2f}' if t in prim else '–' for t, _ in COLUMNS]
        shared = {t: v for t, v in prim.items() if t in base}
        dm = delta_m(shared, base) if shared else float('nan')
        cells += [f'{dm:+.2f}', params.get(name, '')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
