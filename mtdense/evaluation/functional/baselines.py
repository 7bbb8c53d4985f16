"""Per-task baseline numbers for Δm, read from a JSON file that records their origin.

File format (one JSON object)::

    {
      "dataset":  "PASCAL-Context (ASTMT multi-task split, val 5105 images)",
      "backbone": "Swin-T (ImageNet-1k)",
      "method":   "single-task full fine-tuning",           # optional
      "metrics":  {"semseg":      {"mIoU": 67.21},
                   "human_parts": {"mIoU": 61.93},
                   "saliency":    {"mIoU": 62.35},
                   "normals":     {"mErr": 17.97}},
      "source":   "where the numbers come from (paper + table, or run + commit)",
      "notes":    "anything needed to read them correctly",  # optional, string or null
      "protocol": {"eval_protocol": "resized",               # optional: how they were
                   "saliency_protocol": "astmt"}             # evaluated (MultiTaskMetric)
    }

``metrics`` maps task names (see :mod:`mtdense.tasks`) to ``{metric: number}``; Δm uses
each task's primary metric (semseg / human_parts / saliency ``mIoU``, normals ``mErr``,
depth ``rmse``, edge ``odsF``) in the units mtdense reports (percent, degrees, metres). Other metric
names may be recorded too. ``source`` is required and must be non-empty: a number
without provenance is not accepted. ``protocol`` records the evaluation protocol
(``eval_protocol``: 'native' | 'resized', see ``MTTestResize``; ``saliency_protocol``:
'mtdense' | 'astmt'); ``MultiTaskMetric`` reports Δm only when its own evaluation used
the same protocol, since relative gains across protocols are not comparable.
"""
from __future__ import annotations

import json
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional

from mtdense.tasks import get_task

_REQUIRED = ('dataset', 'backbone', 'metrics', 'source')
_OPTIONAL = ('method', 'notes', 'protocol')
#: allowed values of the ``protocol`` entries
PROTOCOL_VALUES: Dict[str, tuple] = {'eval_protocol': ('native', 'resized'),
                                     'saliency_protocol': ('mtdense', 'astmt')}


@dataclass(frozen=True)
class Baselines:
    """Validated content of a baselines file."""
    dataset: str
    backbone: str
    metrics: Dict[str, Dict[str, float]]
    source: str
    method: Optional[str] = None
    notes: Optional[str] = None
    protocol: Optional[Dict[str, str]] = None
    path: Optional[str] = field(default=None, compare=False)

    def protocol_mismatch(self, used: Mapping[str, str]) -> Dict[str, tuple]:
        """``{key: (baselines' value, used value)}`` for protocol entries that differ."""
        mine = self.protocol or {}
        return {k: (mine[k], used.get(k)) for k in mine if used.get(k) != mine[k]}

    def primary(self, tasks: Iterable[str]) -> Dict[str, float]:
        """``{task: baseline value of the task's primary metric}`` for Δm."""
        where = self.path or '<baselines>'
        out = {}
        for task in tasks:
            metric = get_task(task).primary_metric
            if task not in self.metrics:
                raise KeyError(f'{where}: no baseline for task {task!r} (the file has '
                               f'{sorted(self.metrics)}); Δm needs every evaluated task')
            if metric not in self.metrics[task]:
                raise KeyError(f'{where}: metrics.{task} has no {metric!r} (the primary metric '
                               f'of {task!r}); it has {sorted(self.metrics[task])}')
            value = self.metrics[task][metric]
            if value == 0:
                raise ValueError(f'{where}: metrics.{task}.{metric} is 0; Δm divides by it')
            out[task] = value
        return out


def _check_str(obj: Mapping[str, Any], key: str, where: str, optional: bool = False) -> None:
    value = obj.get(key)
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{where}: "{key}" must be a non-empty string, got {value!r}')


def parse_baselines(obj: Any, where: str = '<baselines>') -> Baselines:
    """Validate a decoded baselines object (see the module docstring for the format)."""
    if not isinstance(obj, dict):
        raise ValueError(f'{where}: expected a JSON object at the top level, got '
                         f'{type(obj).__name__}')
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise KeyError(f'{where}: missing required key(s) {missing}; required: '
                       f'{list(_REQUIRED)}, optional: {list(_OPTIONAL)}')
    unknown = sorted(set(obj) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise KeyError(f'{where}: unknown key(s) {unknown}; allowed: '
                       f'{list(_REQUIRED + _OPTIONAL)}')
    for key in ('dataset', 'backbone', 'source'):
        _check_str(obj, key, where)
    for key in ('method', 'notes'):
        _check_str(obj, key, where, optional=True)
    protocol = obj.get('protocol')
    if protocol is not None:
        if not isinstance(protocol, dict) or not protocol:
            raise ValueError(f'{where}: "protocol" must be an object like {{"eval_protocol": '
                             f'"native", "saliency_protocol": "mtdense"}}, got {protocol!r}')
        for key, value in protocol.items():
            if key not in PROTOCOL_VALUES:
                raise KeyError(f'{where}: protocol has unknown key {key!r}; allowed: '
                               f'{sorted(PROTOCOL_VALUES)}')
            if value not in PROTOCOL_VALUES[key]:
                raise ValueError(f'{where}: protocol.{key} must be one of '
                                 f'{list(PROTOCOL_VALUES[key])}, got {value!r}')
    metrics = obj['metrics']
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError(f'{where}: "metrics" must be a non-empty object '
                         f'{{task: {{metric: number}}}}, got {metrics!r}')
    clean: Dict[str, Dict[str, float]] = {}
    for task, values in metrics.items():
        try:
            get_task(task)
        except KeyError as e:
            raise ValueError(f'{where}: metrics: {e.args[0]}') from None
        if not isinstance(values, dict) or not values:
            raise ValueError(f'{where}: metrics.{task} must be a non-empty object '
                             f'{{metric: number}}, got {values!r}')
        clean[task] = {}
        for name, value in values.items():
            # bool is an int subclass: reject it explicitly.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise ValueError(f'{where}: metrics.{task}.{name} must be a finite number, '
                                 f'got {value!r}')
            clean[task][name] = float(value)
    return Baselines(dataset=obj['dataset'], backbone=obj['backbone'], metrics=clean,
                     source=obj['source'], method=obj.get('method'), notes=obj.get('notes'),
                     protocol=dict(protocol) if protocol else None,
                     path=None if where == '<baselines>' else where)


def load_baselines(path: str, tasks: Optional[Iterable[str]] = None) -> Baselines:
    """Read and validate a baselines JSON file.

    Args:
        path: the JSON file.
        tasks: if given, also check that each task has its primary metric.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'baselines file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            obj = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from None
    baselines = parse_baselines(obj, where=path)
    if tasks is not None:
        baselines.primary(tasks)
    return baselines


def baselines_from_runs(runs: Iterable[Mapping[str, Any]], dataset: str, backbone: str,
                        method: str = 'single-task full fine-tuning (one run per task)',
                        notes: Optional[str] = None) -> Dict[str, Any]:
    """A baselines object (the file format above) from metrics files of ``tools/test.py``.

    Each run is ``dict(path=..., data=<the decoded metrics JSON>)``; a run contributes every
    task it has metrics for. A task in two runs, runs evaluated under different protocols,
    or a run without metrics is an error. ``source`` lists every run's metrics file,
    config and checkpoint, so each number can be traced to the run that produced it.
    """
    metrics: Dict[str, Dict[str, float]] = {}
    origin: Dict[str, str] = {}
    protocols = set()
    lines = []
    for run in runs:
        path, data = run['path'], run['data']
        if not isinstance(data, Mapping) or not isinstance(data.get('metrics'), Mapping):
            raise ValueError(f'{path}: no "metrics" object (expected the JSON that tools/test.py '
                             'writes)')
        tasks = {}
        for key, value in data['metrics'].items():
            task, sep, name = key.partition('/')
            if not sep or task == 'multi_task':
                continue
            get_task(task)
            tasks.setdefault(task, {})[name] = float(value)
        if not tasks:
            raise ValueError(f'{path}: no per-task metrics')
        for task, values in tasks.items():
            if task in metrics:
                raise ValueError(f'task {task!r} is in two runs: {origin[task]} and {path}; '
                                 'give one run per task')
            metrics[task] = values
            origin[task] = path
        protocol = data.get('protocol') or {}
        protocols.add(tuple(sorted(protocol.items())))
        lines.append(f'{", ".join(tasks)}: {path} (config {data.get("config")}, checkpoint '
                     f'{data.get("checkpoint")})')
    if not metrics:
        raise ValueError('no runs given')
    if len(protocols) > 1:
        raise ValueError(f'the runs were evaluated under different protocols {sorted(protocols)};'
                         ' baselines must share one protocol')
    out: Dict[str, Any] = dict(dataset=dataset, backbone=backbone, method=method,
                               metrics=metrics,
                               source='tools/make_baselines.py from the runs: ' + '; '.join(lines),
                               notes=notes)
    protocol = dict(next(iter(protocols)))
    if protocol:
        out['protocol'] = protocol
    parse_baselines(out)  # the result must be a valid baselines object
    return out
