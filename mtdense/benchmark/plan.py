"""The benchmark's jobs, their dependencies and their state on disk.

Jobs (ids in brackets):

* ``upstream``: the Swin family's upstream pretraining + backbone extraction;
* ``profile/<row>``: cost versus the number of tasks (inference and training step);
* ``train/<row>/lr<lr>[_bb<mult>]_s<seed>``: one training run, evaluated on the validation
  split. First only the *tuning* runs exist (every point of the grid, tuning seed: each lr,
  and with the preset's ``backbone_lr_mults`` each backbone-side multiple of it for a row
  whose backbone side trains, known from its profile); once they are all done the row's
  point is selected on validation metrics (:func:`mtdense.benchmark.aggregate.select_lr`)
  and the other seeds' runs at that point appear;
* ``test/<row>/lr<lr>_s<seed>``: the selected runs' checkpoints on the test split.

A job is done when its result JSON exists and records the job's ``spec_hash`` (a hash
of everything the job's outcome depends on: its config text, the data, the weights it
starts from). Re-running the command therefore skips finished jobs and redoes a job
whose inputs changed (e.g. an edited method config). :meth:`Plan.jobs` rebuilds the
list from the files on every call, so the scheduler needs no other state.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from .aggregate import select_lr
from .compose import (ConfigError, MethodRow, apply_loading_policy, compose,
                      discover_preset_rows, scale_backbone_lr, set_schedule)
from .jobs import write_json_atomic
from .presets import UPSTREAM_VAL_FRACTION, Preset

__all__ = ['Plan', 'spec_hash', 'lr_tag', 'run_name']

# scheduling order: upstream first (the Swin runs wait for it), then the cost
# measurements (short; they give the per-iteration costs the training order uses), then
# training runs longest first, then the short test evaluations
_PRIORITY = dict(upstream=0, profile=1, train=2, test=3)
WEIGHTS_SOURCES = ('upstream', 'mobilenetv2_imagenet')


def spec_hash(obj: Any) -> str:
    """Short sha256 of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_hash(path: str) -> str:
    """sha256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()[:16]


def lr_tag(lr: float) -> str:
    return f'lr{lr:g}'


def run_name(lr: float, seed: int, mult: float = 1.0) -> str:
    """``lr0.01_s0``; with a backbone-side multiple other than 1, ``lr0.01_bb0.1_s0``."""
    bb = '' if mult == 1.0 else f'_bb{mult:g}'
    return f'{lr_tag(lr)}{bb}_s{seed}'


def _read(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Plan:
    """Jobs of one benchmark invocation.

    Args:
        preset: validated :class:`~mtdense.benchmark.presets.Preset`.
        out_dir: results (small JSON files, tables, plot; what is kept).
        work_dir: data, weights, checkpoints, mmengine logs.
        config_dir: folder of the row configs (``configs/benchmark``).
    """

    def __init__(self, preset: Preset, out_dir: str, work_dir: str, config_dir: str) -> None:
        self.preset = preset
        self.out_dir = os.path.abspath(out_dir)
        self.work_dir = os.path.abspath(work_dir)
        self.config_dir = os.path.abspath(config_dir)
        found = discover_preset_rows(self.config_dir, preset.row_dirs)
        missing = [k for k in preset.rows if k not in found]
        if missing:
            raise ConfigError(f'preset {preset.name!r}: rows {missing} have no config in '
                              f'{self.config_dir} (found {sorted(found)})')
        self.rows: List[MethodRow] = [found[k] for k in preset.rows]
        families = sorted({r.family for r in self.rows})
        #: ``{family: row key}`` of each family's Δm reference (:meth:`role`)
        self.baseline: Dict[str, str] = {}
        for fam in families:
            if fam in preset.baselines:
                key = preset.baselines[fam]
                if found[key].family != fam:
                    raise ConfigError(f'preset {preset.name!r}: baselines[{fam!r}] = {key!r} is '
                                      f'a row of family {found[key].family!r}')
                self.baseline[fam] = key
                continue
            base = [r.key for r in self.rows if r.family == fam and r.role == 'baseline']
            if len(base) != 1:
                avail = [r.key for r in found.values() if r.family == fam and r.role == 'baseline']
                raise ConfigError(f'preset {preset.name!r}: family {fam!r} needs exactly one '
                                  f'baseline row (Δm is relative to it), found {base}; '
                                  f"rows with role='baseline': {avail} (or name one in the "
                                  "preset's baselines)")
            self.baseline[fam] = base[0]
        unknown = sorted(set(preset.baselines) - set(families))
        if unknown:
            raise ConfigError(f'preset {preset.name!r}: baselines names families {unknown} '
                              f'without rows (families: {families})')
        self.protocols: Dict[str, Dict[str, Any]] = {}
        for fam in families:
            row = next(r for r in self.rows if r.family == fam)
            cfg = Config.fromfile(row.protocol)
            spec = cfg.get('benchmark_protocol')
            if not isinstance(spec, dict) or spec.get('weights') not in WEIGHTS_SOURCES \
                    or not isinstance(spec.get('weights_key'), str):
                raise ConfigError(f'{row.protocol}: benchmark_protocol must be dict(weights=one of '
                                  f'{WEIGHTS_SOURCES}, weights_key="model...."), got {spec!r}')
            if spec['weights'] == 'upstream':
                up = os.path.normpath(os.path.join(os.path.dirname(row.protocol),
                                                   spec.get('upstream_config', '')))
                if not os.path.isfile(up):
                    raise ConfigError(f'{row.protocol}: benchmark_protocol.upstream_config '
                                      f'{spec.get("upstream_config")!r} -> {up} is not a file')
                spec = dict(spec, upstream_config=up)
            self.protocols[fam] = dict(spec, path=row.protocol)
        self.weights_hash: Dict[str, str] = {}  # filled by the runner after preparing weights
        #: another benchmark folder whose identical job results count as finished (copied
        #: here when first asked for, see :meth:`done`); the ids of the jobs taken from it
        self.reuse_dir: Optional[str] = None
        self.reused: set = set()
        # job dicts depend only on the preset and the weights: built once (composing a
        # config parses several files), results are read from disk on every call
        self._memo: Dict[Any, Dict[str, Any]] = {}

    def role(self, row: MethodRow) -> str:
        """'baseline' for its family's Δm reference in this preset, else 'method' (a row's
        declared role only decides when the preset names no baseline for its family)."""
        return 'baseline' if self.baseline[row.family] == row.key else 'method'

    def _compose(self, row: MethodRow) -> Config:
        """:func:`compose` of ``row``, parsed once (a copy each call)."""
        key = ('compose', row.key)
        if key not in self._memo:
            self._memo[key] = dict(cfg=compose(row, self.preset.protocol_options))
        return copy.deepcopy(self._memo[key]['cfg'])

    # ------------------------------------------------------------------ paths
    def data_spec(self, which: str) -> Dict[str, Any]:
        """``which``: 'trainval' (train + val splits), 'test' (held-out rendering) or
        'upstream' (the preset's own upstream rendering, if it has ``upstream_data``)."""
        p = self.preset
        h, w = p.img_size
        scene: Dict[str, Any] = {}
        if which == 'trainval':
            num, seed, val = p.num_trainval, p.data_seed, p.val_fraction
        elif which == 'test':
            num, seed, val = p.num_test, p.test_seed, 0.0
        elif which == 'upstream' and p.upstream_data is not None:
            up = p.upstream_data
            num, seed = up['num'], up['seed']
            val = float(up.get('val_fraction', UPSTREAM_VAL_FRACTION))
            scene = dict(up.get('scene') or {})
        else:
            raise KeyError(f'data_spec: {which!r} is not trainval, test or (with the '
                           f'preset\'s upstream_data) upstream')
        name = f'{which}_seed{seed}_n{num}_{h}x{w}'
        if scene:  # another distribution: its settings name its folder
            name += '_' + spec_hash(scene)[:8]
        spec = dict(root=os.path.join(self.work_dir, 'data', name), num=num, seed=seed,
                    val_fraction=val, size=[h, w])
        if scene:
            spec['scene'] = scene
        return spec

    def data_kinds(self) -> List[str]:
        """The renderings this preset needs."""
        return ['trainval', 'test'] + (['upstream'] if self.preset.upstream_data else [])

    def upstream_data_spec(self) -> Dict[str, Any]:
        """What the upstream trains on: its own rendering, else the training split."""
        return self.data_spec('upstream' if self.preset.upstream_data else 'trainval')

    @property
    def upstream_backbone(self) -> str:
        return os.path.join(self.work_dir, 'upstream', 'backbone.pth')

    @property
    def mnv2_weights(self) -> str:
        return os.path.join(self.work_dir, 'weights', 'mobilenetv2_100_in1k.safetensors')

    def run_name(self, lr: float, seed: int, mult: float = 1.0) -> str:
        return run_name(lr, seed, mult)

    # ---------------------------------------------------------------- configs
    def _data_roots(self, cfg: Config) -> None:
        tv, te = self.data_spec('trainval')['root'], self.data_spec('test')['root']
        cfg.train_dataloader.dataset.update(data_root=tv, split='train')
        cfg.val_dataloader.dataset.update(data_root=tv, split='val')
        test = copy.deepcopy(cfg.val_dataloader)
        test.dataset.update(data_root=te, split='test')
        cfg.test_dataloader = test

    def _weights(self, family: str) -> Optional[str]:
        source = self.protocols[family]['weights']
        return self.upstream_backbone if source == 'upstream' else self.mnv2_weights

    def _depends_on(self, family: str) -> List[str]:
        return ['upstream'] if self.protocols[family]['weights'] == 'upstream' else []

    def _inputs_hash(self, family: str) -> str:
        """What a family's runs start from: data, and the upstream job or weights file."""
        src = self.protocols[family]['weights']
        weights = self.upstream_job()['spec_hash'] if src == 'upstream' \
            else self.weights_hash.get('mobilenetv2_imagenet', 'not prepared')
        return spec_hash([self.data_spec('trainval'), self.data_spec('test'), weights])

    def run_config(self, row: MethodRow, lr: float, seed: int, mult: float = 1.0) -> Config:
        """The full config of one training run (also used by its test job); ``mult``: the
        backbone side's lr multiple of the grid point (1: the heads' lr)."""
        where = row.config
        cfg = self._compose(row)
        apply_loading_policy(cfg, where)
        set_schedule(cfg, self.preset.iters, lr, where)
        if mult != 1.0:
            scale_backbone_lr(cfg, mult, where)
        self._data_roots(cfg)
        cfg.merge_from_dict({self.protocols[row.family]['weights_key']: self._weights(row.family)})
        cfg.randomness = dict(seed=int(seed), deterministic=False)
        name = f'{row.key}_{self.run_name(lr, seed, mult)}'
        cfg.work_dir = os.path.join(self.work_dir, 'runs', row.key, self.run_name(lr, seed, mult))
        cfg.experiment_name = name
        cfg.visualizer.name = name
        return cfg

    def upstream_config(self) -> Config:
        spec = next(s for s in self.protocols.values() if s['weights'] == 'upstream')
        cfg = Config.fromfile(spec['upstream_config'])
        if self.preset.protocol_options:
            cfg.merge_from_dict(dict(self.preset.protocol_options))
        apply_loading_policy(cfg, spec['upstream_config'])
        set_schedule(cfg, self.preset.upstream_iters, cfg.optim_wrapper.optimizer.lr,
                     spec['upstream_config'])
        self._data_roots(cfg)
        if self.preset.upstream_data:
            # its own rendering: train on its train split, validate on its val split
            root = self.data_spec('upstream')['root']
            cfg.train_dataloader.dataset.update(data_root=root, split='train')
            cfg.val_dataloader.dataset.update(data_root=root, split='val')
        cfg.randomness = dict(seed=int(self.preset.data_seed), deterministic=False)
        cfg.work_dir = os.path.join(self.work_dir, 'upstream')
        cfg.experiment_name = cfg.visualizer.name = 'upstream'
        return cfg

    def profile_config(self, row: MethodRow) -> Config:
        """The row's model for the profiler; random weights (they do not change the cost)."""
        cfg = self._compose(row)
        cfg.merge_from_dict({self.protocols[row.family]['weights_key']: None})
        return cfg

    def profile_settings(self, cfg: Config, where: str) -> Dict[str, Any]:
        """``ProfileSettings`` fields: the training batch and crop, one thread."""
        crop = cfg.get('crop_size')
        if not (isinstance(crop, (list, tuple)) and len(crop) == 2 and crop[0] == crop[1]):
            raise ConfigError(f'{where}: crop_size must be a square (h, w) pair (the profiler '
                              f'measures square inputs), got {crop!r}')
        # defaults, then the preset's fields (isolate='config' keeps each row's peak memory
        # its own: a fresh process per row)
        settings = dict(img_size=int(crop[0]), batch_size=int(cfg.train_dataloader.batch_size),
                        modes=['infer', 'train'], device='cpu',
                        num_classes=int(cfg.model.num_classes), flops=False,
                        backbone_alone=False, threads=1, isolate='config', seed=0)
        settings.update(self.preset.profile)
        settings['num_tasks'] = sorted(set(int(t) for t in settings['num_tasks']))
        return settings

    @staticmethod
    def _write_config(cfg: Config, path: str) -> str:
        """Dump ``cfg`` to ``path`` if its text changed; return the text."""
        text = cfg.pretty_text
        os.makedirs(os.path.dirname(path), exist_ok=True)
        old = None
        if os.path.isfile(path):
            with open(path) as f:
                old = f.read()
        if old != text:
            with open(path, 'w') as f:
                f.write(text)
        return text

    # ------------------------------------------------------------------- jobs
    def _job(self, kind: str, job_id: str, result: str, log: str, deps: List[str],
             hash_obj: Any, cost: float, **extra: Any) -> Dict[str, Any]:
        return dict(kind=kind, id=job_id, result=result, log=log, deps=deps,
                    spec_hash=spec_hash([kind, hash_obj]), priority=_PRIORITY[kind],
                    cost=float(cost), **extra)

    def upstream_job(self) -> Dict[str, Any]:
        if 'upstream' in self._memo:
            return self._memo['upstream']
        cfg = self.upstream_config()
        path = os.path.join(self.work_dir, 'upstream', 'config.py')
        text = self._write_config(cfg, path)
        job = self._job('upstream', 'upstream', os.path.join(self.out_dir, 'upstream.json'),
                        os.path.join(self.work_dir, 'upstream', 'job.log'), [],
                        [text, self.upstream_data_spec()], self.preset.upstream_iters,
                        config=path, backbone=self.upstream_backbone)
        self._memo['upstream'] = job
        return job

    def done(self, job: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The job's result if it is finished with the job's current spec, else None.

        With :attr:`reuse_dir` set, a job not finished here whose identical result (same
        relative file, same spec hash) is in that folder is copied from it: finished."""
        res = _read(job['result'])
        if res is not None and res.get('spec_hash') == job['spec_hash']:
            return res
        if self.reuse_dir is None:
            return None
        src = _read(os.path.join(self.reuse_dir, os.path.relpath(job['result'], self.out_dir)))
        if src is None or src.get('spec_hash') != job['spec_hash']:
            return None
        src = dict(src, reused_from=self.reuse_dir)  # the copy says where it came from
        write_json_atomic(src, job['result'])
        self.reused.add(job['id'])
        return src

    def _s_per_iter(self, row: MethodRow) -> Optional[float]:
        """The row's training step at its real task count, from its finished profile
        (used to order the training runs, longest first)."""
        key = ('s_per_iter', row.key)
        if key in self._memo:
            return self._memo[key]['value']
        res = self.done(self.profile_job(row))
        if not res:
            return None
        ntasks = len(self._compose(row).model.tasks)
        value = None
        for r in res['report']['results']:
            if r['mode'] == 'train' and r['num_tasks'] == ntasks and 'latency' in r:
                value = r['latency']['median_ms'] / 1000.0
        self._memo[key] = dict(value=value)
        return value

    def profile_job(self, row: MethodRow) -> Dict[str, Any]:
        key = ('profile', row.key)
        if key not in self._memo:
            cfg = self.profile_config(row)
            path = os.path.join(self.work_dir, 'profile', row.key, 'config.py')
            text = self._write_config(cfg, path)
            settings = self.profile_settings(cfg, row.config)
            self._memo[key] = self._job(
                'profile', f'profile/{row.key}',
                os.path.join(self.out_dir, 'profile', f'{row.key}.json'),
                os.path.join(self.work_dir, 'profile', row.key, 'job.log'), [],
                [text, settings], 10.0, row=row.key, config=path, settings=settings)
        return self._memo[key]

    def train_job(self, row: MethodRow, lr: float, seed: int, mult: float = 1.0
                  ) -> Dict[str, Any]:
        key = ('train', row.key, lr, seed, mult)
        if key not in self._memo:
            name = self.run_name(lr, seed, mult)
            cfg = self.run_config(row, lr, seed, mult)
            path = os.path.join(cfg.work_dir, 'config.py')
            text = self._write_config(cfg, path)
            self._memo[key] = self._job(
                'train', f'train/{row.key}/{name}',
                os.path.join(self.out_dir, 'runs', row.key, f'{name}.json'),
                os.path.join(cfg.work_dir, 'job.log'), self._depends_on(row.family),
                [text, self._inputs_hash(row.family)], self.preset.iters, row=row.key, lr=lr,
                seed=seed, backbone_lr_mult=mult, config=path,
                checkpoint=os.path.join(cfg.work_dir, f'iter_{self.preset.iters}.pth'))
        job = self._memo[key]
        # expected seconds (scheduling order only): iterations x the profiled step
        job['cost'] = self.preset.iters * (self._s_per_iter(row) or 1.0)
        return job

    def test_job(self, row: MethodRow, train: Dict[str, Any]) -> Dict[str, Any]:
        key = ('test', train['id'])
        if key not in self._memo:
            name = self.run_name(train['lr'], train['seed'], train['backbone_lr_mult'])
            run_dir = os.path.dirname(train['config'])
            self._memo[key] = self._job(
                'test', f'test/{row.key}/{name}',
                os.path.join(self.out_dir, 'runs', row.key, f'{name}.test.json'),
                os.path.join(run_dir, 'test.log'), [train['id']],
                [train['spec_hash'], self.data_spec('test')], 1.0, row=row.key,
                lr=train['lr'], seed=train['seed'], backbone_lr_mult=train['backbone_lr_mult'],
                config=train['config'],
                checkpoint=train['checkpoint'], work_dir=os.path.join(run_dir, 'test'))
        return self._memo[key]

    def backbone_trains(self, row: MethodRow) -> Optional[bool]:
        """Whether the row trains any backbone-side parameter (from its finished profile's
        parameter count, read once; None while the profile is not done)."""
        key = ('backbone_trains', row.key)
        if key in self._memo:
            return self._memo[key]['value']
        job = self.profile_job(row)
        res = self.done(job)
        if res is None:
            return None
        recs = [r for r in res['report']['results'] if r.get('params')]
        if not recs:
            raise ValueError(f'{job["id"]}: no parameter counts in {job["result"]}')
        value = recs[0]['params']['backbone_trainable'] > 0
        self._memo[key] = dict(value=value)
        return value

    def grid(self, row: MethodRow) -> Optional[List[Any]]:
        """The row's grid points ``(lr, backbone multiple)``; None while it depends on the
        row's unfinished profile (with more than one multiple in the preset)."""
        mults = self.preset.backbone_lr_mults
        if len(mults) > 1:
            trains = self.backbone_trains(row)
            if trains is None:
                return None
            mults = mults if trains else (1.0,)
        return [(lr, m) for m in mults for lr in self.preset.lrs]

    def tuning_jobs(self, row: MethodRow) -> List[Dict[str, Any]]:
        """The tuning runs known now: the one-lr points always, the other multiples' once
        the row's profile says its backbone side trains."""
        points = self.grid(row) or [(lr, 1.0) for lr in self.preset.lrs]
        return [self.train_job(row, lr, self.preset.tuning_seed, m) for lr, m in points]

    def selection(self, row: MethodRow) -> Optional[Dict[str, Any]]:
        """The row's grid-point selection once all its tuning runs are done, else None."""
        if self.grid(row) is None:
            return None
        tuning = self.tuning_jobs(row)
        results = [self.done(j) for j in tuning]
        if any(r is None for r in results):
            return None
        return select_lr({(j['lr'], j['backbone_lr_mult']): r['val_metrics']
                          for j, r in zip(tuning, results)})

    def row_jobs(self, row: MethodRow) -> List[Dict[str, Any]]:
        """The row's profile, training and test jobs as far as they are known now."""
        out = [self.profile_job(row)] + self.tuning_jobs(row)
        chosen = self.selection(row)
        if chosen is None:
            return out
        for seed in self.preset.seeds:
            tj = self.train_job(row, chosen['lr'], seed, chosen['backbone_lr_mult'])
            if seed != self.preset.tuning_seed:
                out.append(tj)
            out.append(self.test_job(row, tj))
        return out

    def jobs(self) -> List[Dict[str, Any]]:
        """Every job known now (see the module docstring), each with ``state``: 'done',
        or 'todo' (with ``redo`` saying why a finished job must run again)."""
        out = []
        if any(s['weights'] == 'upstream' for s in self.protocols.values()):
            out.append(self.upstream_job())
        for row in self.rows:
            out += self.row_jobs(row)
        by_id = {j['id']: j for j in out}
        for j in out:
            j['state'] = 'done' if self.done(j) is not None else 'todo'
            j.pop('redo', None)
        for j in out:
            # a selected run whose checkpoint was deleted before its test: train it again
            if j['kind'] == 'test' and j['state'] == 'todo':
                train = by_id[j['deps'][0]]
                if train['state'] == 'done' and not os.path.isfile(train['checkpoint']):
                    train['state'], train['redo'] = 'todo', 'checkpoint missing for its test'
        return out
