"""``MultiTaskMetric``: per-task dense metrics and Δm from sufficient statistics."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement, PixelData
from prettytable import PrettyTable

from mtdense.registry import METRICS
from mtdense.tasks import IGNORE_INDEX, TASKS, check_tasks, get_task

from ..functional.baselines import Baselines, load_baselines
from ..functional import DEFAULT_EDGE_MAX_DIST, STATS, SegStats, relative_gains
from ..functional._utils import to_numpy

Stats = Any  # the statistics object of a task definition (mtdense.evaluation.functional)

#: saliency_protocol -> precision/recall of an image whose prediction and GT are both empty
SALIENCY_PROTOCOLS: Dict[str, float] = {'mtdense': 1.0, 'astmt': 0.0}
#: record key of a sample's evaluation protocol (not a task name)
_PROTOCOL_KEY = '_eval_protocol'

# Metrics in the ground truth's unit rather than percent/degrees: printed with more digits.
_FINE_METRICS = {'depth': ('rmse', 'log_rmse', 'abs_rel')}


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Evaluate every dense task of a multi-task model, exactly under DDP.

    ``process`` turns each data sample into small additive per-task statistics
    (sparse confusion matrix, per-threshold saliency sums, sparse angle histogram,
    depth error sums), one record per sample in ``self.results``; mmengine gathers
    them across ranks (dropping the sampler's padding) and ``compute_metrics`` sums
    them, so the result is the same as a single-process evaluation. Definitions:
    :mod:`mtdense.evaluation.functional` (docs/evaluation.md).

    Predictions must already be at the ground-truth resolution (the model resizes
    them to ``ori_shape``; the test pipeline keeps ground truth at original size), so
    evaluation is at native resolution; a shape mismatch raises an error.

    Returned keys: ``<task>/<metric>`` for every task (semseg/human_parts: ``mIoU``,
    ``pixAcc``; saliency: ``mIoU``, ``maxF``; normals: ``mErr``, ``median``, ``rmse``,
    ``<11.25``, ``<22.5``, ``<30``; depth: ``rmse``, ``log_rmse``, ``abs_rel``,
    ``delta1..3``; edge: ``odsF``, ``oisF``, ``AP``) and ``multi_task/delta_m`` when
    ``baselines`` is given.

    Args:
        tasks: tasks to evaluate; every sample must carry ``pred_<t>`` and ``gt_<t>``.
            None: the tasks each sample has a prediction for (ground truth required).
        baselines: path of a baselines JSON (see :mod:`mtdense.evaluation.functional.baselines`)
            for Δm over the evaluated tasks' primary metrics; None: no Δm.
        num_classes: ``{task: C}`` for segmentation tasks. Defaults: semseg from
            ``len(dataset_meta['classes'])``, human_parts 7.
        nan_to_zero: a class neither annotated nor predicted counts 0 in mIoU (the
            multi-task convention, default); False: mmseg's nanmean.
        saliency_beta_switch: False (default): saliency maxF from image-mean precision
            and recall with β = 1; True: pixel-pooled F_β with β² = 0.3.
        saliency_protocol: ``'mtdense'`` (default): an image whose prediction and
            ground truth are both empty scores precision = recall = 1; ``'astmt'``:
            0, as the ASTMT-lineage code (ASTMT, MTI-Net, MTLoRA) computes them — use
            it to compare saliency maxF with their published rows.
        ignore_index: ignored label value of seg/saliency ground truth.
        normals_bin_width: angle histogram bin (degrees) for the normals median.
        depth_min_pred: clamp of depth predictions before logs and ratios.
        edge_max_dist: edge matching tolerance as a fraction of the image diagonal;
            None: the dataset metainfo's ``edge_max_dist`` (PASCAL-Context 0.0075,
            NYUD-v2 0.011), else the BSDS default 0.0075.
        edge_thresholds: edge probability thresholds (default 0.01, ..., 0.99).
        log_per_class: also log per-class IoU tables for segmentation tasks.
        collect_device, prefix, collect_dir: see :class:`mmengine.evaluator.BaseMetric`.
    """

    def __init__(self,
                 tasks: Optional[Sequence[str]] = None,
                 baselines: Optional[str] = None,
                 num_classes: Optional[Mapping[str, int]] = None,
                 nan_to_zero: bool = True,
                 saliency_beta_switch: bool = False,
                 saliency_protocol: str = 'mtdense',
                 ignore_index: int = IGNORE_INDEX,
                 normals_bin_width: float = 0.01,
                 depth_min_pred: float = 1e-3,
                 edge_max_dist: Optional[float] = None,
                 edge_thresholds: Optional[Sequence[float]] = None,
                 log_per_class: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        # Keys already carry the task name, so no prefix is needed; a placeholder avoids
        # BaseMetric's "prefix is not set" warning and is replaced right after.
        super().__init__(collect_device=collect_device, prefix=prefix or 'mtdense',
                         collect_dir=collect_dir)
        self.prefix = prefix
        self.tasks = None if tasks is None else check_tasks(tasks, where='MultiTaskMetric.tasks')
        self.baselines: Optional[Baselines] = None
        if baselines is not None:
            self.baselines = load_baselines(baselines, tasks=self.tasks)
        if num_classes is not None:
            if not isinstance(num_classes, Mapping):
                raise TypeError(f'MultiTaskMetric.num_classes must be a dict {{task: C}}, got '
                                f'{num_classes!r}')
            for t, c in num_classes.items():
                if not get_task(t).has_classes:
                    raise ValueError(f'MultiTaskMetric.num_classes: {t!r} is not a segmentation '
                                     'task (its definition has no classes)')
                if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                    raise ValueError(f'MultiTaskMetric.num_classes[{t!r}] must be a positive '
                                     f'int, got {c!r}')
        self.num_classes = dict(num_classes or {})
        self.nan_to_zero = nan_to_zero
        self.saliency_beta_switch = saliency_beta_switch
        if saliency_protocol not in SALIENCY_PROTOCOLS:
            raise ValueError(f'MultiTaskMetric.saliency_protocol must be one of '
                             f'{list(SALIENCY_PROTOCOLS)}, got {saliency_protocol!r}')
        self.saliency_protocol = saliency_protocol
        #: evaluation protocol of the samples of the last ``compute_metrics`` (MTTestResize)
        self.eval_protocol: Optional[str] = None
        self.ignore_index = ignore_index
        self.normals_bin_width = normals_bin_width
        self.depth_min_pred = depth_min_pred
        self.edge_max_dist = edge_max_dist
        self.edge_thresholds = None if edge_thresholds is None else list(edge_thresholds)
        self.log_per_class = log_per_class

    # ------------------------------------------------------------------ statistics
    def _num_classes_of(self, task: str) -> int:
        if task in self.num_classes:
            return self.num_classes[task]
        definition = get_task(task)
        if definition.num_channels is not None:
            return definition.num_channels
        classes = (self.dataset_meta or {}).get('classes')
        if not classes:
            raise ValueError(f'MultiTaskMetric: number of classes of task {task!r} unknown; '
                             f'pass num_classes={{{task!r}: C}} or evaluate a dataset whose '
                             f'metainfo has "classes"')
        return len(classes)

    def _class_names(self, task: str, n: int) -> List[str]:
        definition = get_task(task)
        if definition.class_names is not None and len(definition.class_names) == n:
            return list(definition.class_names)
        classes = (self.dataset_meta or {}).get('classes')
        if definition.num_channels is None and classes and len(classes) == n:
            return [str(c) for c in classes]  # the dataset's classes (semseg)
        return [str(i) for i in range(n)]

    def _edge_max_dist(self) -> float:
        if self.edge_max_dist is not None:
            return self.edge_max_dist
        return float((self.dataset_meta or {}).get('edge_max_dist', DEFAULT_EDGE_MAX_DIST))

    def new_stats(self, task: str) -> Stats:
        """An empty accumulator configured for ``task`` (its definition picks the class)."""
        definition = get_task(task)
        options = dict(ignore_index=self.ignore_index, nan_to_zero=self.nan_to_zero,
                       saliency_beta_switch=self.saliency_beta_switch,
                       saliency_empty_pr=SALIENCY_PROTOCOLS[self.saliency_protocol],
                       normals_bin_width=self.normals_bin_width,
                       depth_min_pred=self.depth_min_pred,
                       edge_max_dist=self._edge_max_dist(),
                       edge_thresholds=self.edge_thresholds,
                       num_classes=self._num_classes_of(task) if definition.has_classes else None)
        return definition.new_stats(STATS, options)

    # ------------------------------------------------------------------ process
    def _sample_tasks(self, sample: Any, where: str) -> List[str]:
        if self.tasks is not None:
            return self.tasks
        tasks = [k[len('pred_'):] for k in sample.keys() if k.startswith('pred_')]
        for t in tasks:
            try:
                get_task(t)
            except KeyError as e:
                raise KeyError(f'{where}: prediction field "pred_{t}" is not a known task '
                               f'({e.args[0]}); pass MultiTaskMetric(tasks=[...])') from None
        if not tasks:
            raise KeyError(f'{where}: data sample has no "pred_<task>" field (keys: '
                           f'{sorted(sample.keys())})')
        # Data-element fields are an unordered set: use the canonical task order.
        canonical = list(TASKS)
        return sorted(tasks, key=lambda t: (canonical.index(get_task(t).name), t))

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Append one record ``{task: state}`` of additive statistics per sample."""
        for i, sample in enumerate(data_samples):
            where = f'sample {sample.get("img_path", None) or sample.get("img_id", None) or i}'
            record = {}
            for task in self._sample_tasks(sample, where):
                pred = _field_data(sample, f'pred_{task}', where)
                gt = _field_data(sample, f'gt_{task}', where)
                if pred.shape != gt.shape:
                    raise ValueError(
                        f'{where}, task {task!r}: prediction shape {tuple(pred.shape)} != '
                        f'ground-truth shape {tuple(gt.shape)}; MultiTaskMetric evaluates at '
                        f'ground-truth resolution, so predictions must be resized to it '
                        f'(ori_shape) first')
                stats = self.new_stats(task)
                if isinstance(stats, SegStats):
                    self._check_logit_classes(sample, task, stats.num_classes, where)
                try:
                    get_task(task).update_stats(stats, pred, gt)  # (C, H, W) sample layout
                except (ValueError, TypeError) as e:
                    raise type(e)(f'{where}, task {task!r}: {e}') from e
                record[task] = stats.state_dict()
            record[_PROTOCOL_KEY] = _metainfo(sample).get('eval_protocol', 'native')
            self.results.append(record)

    @staticmethod
    def _check_logit_classes(sample: Any, task: str, num_classes: int, where: str) -> None:
        """A model with C outputs scored against labels of another class set is an error:
        its predictions never reach classes >= C, so the mIoU would look plausible."""
        logits = sample.get(f'logits_{task}', None)
        if logits is None:
            return
        data = logits.data if hasattr(logits, 'data') else (
            logits['data'] if isinstance(logits, dict) and 'data' in logits else logits)
        if getattr(data, 'ndim', 0) == 3 and int(data.shape[0]) != num_classes:
            raise ValueError(
                f'{where}, task {task!r}: the model predicts {int(data.shape[0])} classes but the '
                f'evaluation has {num_classes} (dataset metainfo or MultiTaskMetric.num_classes); '
                'the model was built for another class set (check model.num_classes)')

    # ------------------------------------------------------------------ compute
    def compute_metrics(self, results: List[Dict[str, Dict[str, Any]]]) -> Dict[str, float]:
        """Sum the per-sample records and compute every task's metrics (+ Δm)."""
        protocols = sorted({rec.get(_PROTOCOL_KEY, 'native') for rec in results})
        if len(protocols) > 1:
            raise ValueError(f'MultiTaskMetric: the evaluated samples mix evaluation protocols '
                             f'{protocols} (MTTestResize.protocol); metrics of one split must '
                             'use one protocol')
        self.eval_protocol = protocols[0] if protocols else None
        results = [{k: v for k, v in rec.items() if k != _PROTOCOL_KEY} for rec in results]
        order = list(self.tasks or [])
        for rec in results:
            order.extend(t for t in rec if t not in order)
        accum: Dict[str, Stats] = {t: self.new_stats(t) for t in order}
        n_samples: Dict[str, int] = defaultdict(int)
        for rec in results:
            for task, state in rec.items():
                accum[task].add_state(state)
                n_samples[task] += 1
        metrics: Dict[str, float] = {}
        for task in order:
            for k, v in accum[task].compute().items():
                metrics[f'{task}/{k}'] = v
            if any(math.isnan(v) for k, v in metrics.items() if k.startswith(f'{task}/')):
                print_log(f'MultiTaskMetric: task {task!r} had no valid ground-truth pixel in '
                          f'{n_samples[task]} samples; its metrics are NaN', logger='current',
                          level=logging.WARNING)
        gains = None
        mismatch = (self.baselines.protocol_mismatch(dict(
            eval_protocol=self.eval_protocol or 'native',
            saliency_protocol=self.saliency_protocol)) if self.baselines is not None else {})
        if mismatch:
            print_log(f'MultiTaskMetric: no Δm: the baselines {self.baselines.path} were '
                      f'evaluated under another protocol ('
                      + ', '.join(f'{k} {a!r}, here {b!r}' for k, (a, b) in mismatch.items())
                      + '), so relative gains would not be comparable; evaluate with the '
                      "baselines' protocol (tools/test.py --eval-protocol / --saliency-protocol) "
                      'or use baselines of your own runs (tools/make_baselines.py)',
                      logger='current', level=logging.WARNING)
        elif self.baselines is not None and order:
            values = {t: metrics[f'{t}/{get_task(t).primary_metric}'] for t in order}
            gains = relative_gains(values, self.baselines.primary(order))
            metrics['multi_task/delta_m'] = float(sum(gains.values()) / len(gains))
        self._log(metrics, accum, n_samples, gains)
        return metrics

    def _log(self, metrics: Dict[str, float], accum: Dict[str, Stats],
             n_samples: Dict[str, int], gains: Optional[Dict[str, float]]) -> None:
        lines = []
        if self.log_per_class:
            for task, stats in accum.items():
                if isinstance(stats, SegStats):
                    t = PrettyTable(['class', 'IoU'])
                    absent = 'counts 0' if self.nan_to_zero else 'left out'
                    t.title = f'{task} ({stats.num_images} images; "-" absent: {absent})'
                    for name, v in zip(self._class_names(task, stats.num_classes),
                                       stats.iou()):
                        t.add_row([name, '-' if math.isnan(v) else f'{v:.2f}'])
                    lines.append(t.get_string())
        lines.append(f'evaluation protocol: {self.eval_protocol or "native"} (ground truth '
                     f'{"resized to the network input" if self.eval_protocol == "resized" else "at its original resolution"}); '
                     f'saliency protocol: {self.saliency_protocol}')
        edge_tasks = [t for t in accum if get_task(t).stats_type == 'EdgeStats']
        if edge_tasks:
            lines.append(f'edge ({", ".join(edge_tasks)}): odsF / oisF / AP from mtdense\'s '
                         f'BSDS-style matching within {self._edge_max_dist()} x the diagonal, '
                         'approximate vs SEISM (not yet validated against SEISM outputs)')
        lines.append(format_table(metrics))
        if gains is not None:
            t = PrettyTable(['task', 'metric', 'value', 'baseline', 'gain %'])
            t.title = f'Δm = {metrics["multi_task/delta_m"]:+.2f}% vs {self.baselines.path}'
            base = self.baselines.primary(gains)
            for task, g in gains.items():
                m = get_task(task).primary_metric
                t.add_row([task, m, _fmt(task, m, metrics[f'{task}/{m}']),
                           _fmt(task, m, base[task]), f'{g:+.2f}'])
            lines.append(t.get_string())
            lines.append(f'baselines: {self.baselines.source}')
        print_log('\n' + '\n'.join(lines), logger='current')


def _metainfo(sample: Any) -> Mapping[str, Any]:
    """Metainfo of a data sample (data element or dict)."""
    meta = getattr(sample, 'metainfo', None)
    if meta is None and isinstance(sample, Mapping):
        meta = sample.get('metainfo', sample)
    return meta or {}


def _field_data(sample: Any, key: str, where: str) -> np.ndarray:
    """``sample[key].data`` as numpy, for dict samples and data elements alike."""
    field = sample.get(key, None)
    if field is None:
        kind = 'prediction' if key.startswith('pred_') else 'ground truth'
        raise KeyError(f'{where}: no {kind} "{key}" (fields: {sorted(sample.keys())})')
    if isinstance(field, PixelData) or (isinstance(field, BaseDataElement) and 'data' in field):
        field = field.data
    elif isinstance(field, dict):
        if 'data' not in field:
            raise KeyError(f'{where}: "{key}" has no "data" entry (keys: {sorted(field)})')
        field = field['data']
    return to_numpy(field, f'{where} {key}')


def _fmt(task: str, metric: str, value: float) -> str:
    try:
        base = get_task(task).name
    except KeyError:
        base = task
    digits = 4 if metric in _FINE_METRICS.get(base, ()) else 2
    return f'{value:.{digits}f}'


def format_table(metrics: Mapping[str, float]) -> str:
    """Render ``{'<task>/<metric>': value}`` as one small table per task."""
    groups: Dict[str, Dict[str, float]] = {}
    for key, value in metrics.items():
        task, sep, name = key.rpartition('/')
        groups.setdefault(task if sep else '', {})[name] = value
    tables = []
    for task, values in groups.items():
        t = PrettyTable(list(values))
        t.title = task or 'metrics'
        t.add_row([_fmt(task, k, float(v)) for k, v in values.items()])
        tables.append(t.get_string())
    return '\n'.join(tables)
