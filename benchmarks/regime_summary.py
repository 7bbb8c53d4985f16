"""Summary table of the regime study (docs/regime_study.md) from benchmark folders.

For every folder (a finished ``mtdense benchmark`` run: its ``benchmark.json``) and every Swin
row in it: the setting (preset, upstream, iterations), trainable backbone-side parameters in %
of the backbone, Δm against that folder's single-task FT and the share of the decoder-only ->
single-task-FT gap recovered (mean ± std over seeds), and the per-task primary metrics.

    python benchmarks/regime_summary.py DIR [DIR ...] [--family swin] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List, Mapping, Optional

from mtdense.benchmark.report import format_gap, format_lr, format_pm


def _setting(res: Mapping[str, Any], family: str) -> str:
    pre = res['preset']
    up = pre.get('upstream_data')
    where = 'target split' if not up else f'own rendering ({up["num"]} scenes, seed {up["seed"]})'
    text = (f'`{pre["name"]}`: {pre["iters"]} it/run; upstream {pre["upstream_iters"]} it on '
            f'{where}')
    base = (res.get('baselines') or {}).get(family, {}).get('label')
    if base and base != 'single-task FT':  # another Δm reference than the usual one
        text += f'; Δm vs {base}'
    return text


def summarize(folders: List[str], family: str = 'swin') -> str:
    """The markdown summary of ``folders``' rows of ``family``."""
    lines = ['| setting | row | lr | % of backbone | Δm (%) | gap recovered (%) | ' +
             'per-task (test) |', '|---|---|---:|---:|---:|---:|---|']
    for folder in folders:
        path = os.path.join(folder, 'benchmark.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'regime_summary: {path} not found (a finished benchmark '
                                    'folder is needed)')
        with open(path) as f:
            res = json.load(f)
        for r in res['rows']:
            if r['family'] != family:
                continue
            if r['status'] != 'complete':
                raise ValueError(f'regime_summary: {path}: row {r["key"]} is {r["status"]} '
                                 f'(missing {r["missing"][:3]}); finish the run first')
            params = r.get('params') or {}
            pct = params.get('percent_of_backbone')
            tasks = ', '.join(f'{t} {s["mean"]:.2f}' for t, s in r['test'].items())
            lines.append('| ' + ' | '.join([
                _setting(res, family), r['label'], format_lr(r),
                '–' if pct is None else f'{pct:.2f}', format_pm(r['delta_m'], 2, signed=True),
                format_gap(r.get('gap_recovered')), tasks]) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('folders', nargs='+', help='finished benchmark folders')
    p.add_argument('--family', default='swin', help='rows of this family (default: swin)')
    p.add_argument('--out', default=None, help='also write the table to this file')
    args = p.parse_args(argv)
    text = summarize(args.folders, args.family)
    print(text, end='')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
