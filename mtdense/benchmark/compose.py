"""Method rows and their runnable configs: method config + protocol + run settings.

A *row* is a file ``configs/benchmark/<family>_<method>.py`` that inherits its method's
model config (e.g. ``configs/_base_/models/swin_t_mmseg_mtlora.py``) and declares::

    benchmark = dict(label='MTLoRA', protocol='swin_protocol.py', role='method')

``role='baseline'`` marks the Δm reference of its protocol (single-task FT). An optional
``backbone_lr_mult`` (default 1) scales the learning rate of every parameter under
``model.backbone`` (the backbone and the method's modules inside it: adapters, LoRA, ...)
relative to the grid's lr, which the heads keep (e.g. 0.1: the heads learn ten times faster
than the backbone, the usual fine-tuning recipe). The
*protocol* (``<family>_protocol.py``, inheriting ``configs/demo/demo_base.py``) holds
what every row of a family shares. :func:`compose` takes the row's whole ``model`` dict
(so whatever the method config sets comes through: ``peft`` options, other backbone or
model keys), writes the protocol's :data:`FIXED_MODEL_KEYS` over it, and uses the
protocol for everything else (data, schedule, runtime). :func:`model_delta` lists where
a row's model differs from the protocol's, which the results record per method.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mmengine.config import Config

__all__ = ['FIXED_MODEL_KEYS', 'ROLES', 'BACKBONE_PARAM_KEY', 'MethodRow', 'load_row',
           'discover_rows', 'discover_preset_rows', 'compose', 'method_spec', 'model_delta',
           'apply_loading_policy', 'set_schedule', 'scale_backbone_lr', 'ConfigError',
           'get_dotted', 'plain', 'MISSING']

#: Model keys the protocol holds equal for every row of a family (dotted paths); a key
#: the protocol does not set is left to the row.
FIXED_MODEL_KEYS = ('tasks', 'num_classes', 'heads', 'head_overrides', 'data_preprocessor',
                    'backbone.backbone', 'backbone.checkpoint', 'backbone.checkpoint_format')
ROLES = ('method', 'baseline')
_LOADERS = ('LoadMultiTaskImage', 'LoadMultiTaskAnnotations')


#: returned by :func:`get_dotted` for an absent key
MISSING = object()


class ConfigError(ValueError):
    """A benchmark config lacks a key or has a value of the wrong form."""


@dataclass(frozen=True)
class MethodRow:
    """One row of the benchmark: a method config paired with its family's protocol."""
    key: str        # file stem, e.g. 'swin_vmt' (unique; names runs and results)
    label: str      # shown in tables and plots
    role: str       # 'method' | 'baseline'
    family: str     # protocol stem without '_protocol', e.g. 'swin'
    config: str     # absolute path of the row file
    protocol: str   # absolute path of the protocol file
    backbone_lr_mult: float = 1.0  # lr of model.backbone's parameters / the grid's lr


def _load(path: str) -> Config:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'benchmark config not found: {path}')
    return Config.fromfile(path)


def load_row(path: str) -> MethodRow:
    """Read and check the ``benchmark`` dict of a row file."""
    path = os.path.abspath(path)
    cfg = _load(path)
    spec = cfg.get('benchmark')
    if not isinstance(spec, Mapping):
        raise ConfigError(f'{path}: no `benchmark = dict(label=..., protocol=..., role=...)`; '
                          'not a method row of configs/benchmark/')
    unknown = sorted(set(spec) - {'label', 'protocol', 'role', 'backbone_lr_mult'})
    if unknown:
        raise ConfigError(f'{path}: benchmark has unknown key(s) {unknown}; allowed: label, '
                          'protocol, role, backbone_lr_mult')
    for key in ('label', 'protocol'):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise ConfigError(f'{path}: benchmark.{key} must be a non-empty string, got '
                              f'{spec.get(key)!r}')
    role = spec.get('role', 'method')
    if role not in ROLES:
        raise ConfigError(f'{path}: benchmark.role must be one of {ROLES}, got {role!r}')
    mult = spec.get('backbone_lr_mult', 1.0)
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or not mult > 0:
        raise ConfigError(f'{path}: benchmark.backbone_lr_mult must be a positive number (the '
                          f"backbone's lr relative to the grid's), got {mult!r}")
    protocol = os.path.normpath(os.path.join(os.path.dirname(path), spec['protocol']))
    if not os.path.isfile(protocol):
        raise ConfigError(f'{path}: benchmark.protocol {spec["protocol"]!r} -> {protocol} is '
                          'not a file')
    stem = Path(protocol).stem
    if not stem.endswith('_protocol'):
        raise ConfigError(f'{path}: benchmark.protocol must name a <family>_protocol.py file, '
                          f'got {spec["protocol"]!r}')
    if 'model' not in cfg:
        raise ConfigError(f'{path}: has no `model` (a row inherits its method\'s model config)')
    return MethodRow(key=Path(path).stem, label=spec['label'], role=role,
                     family=stem[:-len('_protocol')], config=path, protocol=protocol,
                     backbone_lr_mult=float(mult))


def discover_rows(config_dir: str, require_baseline: bool = True) -> List[MethodRow]:
    """Every row file in ``config_dir`` (files with a ``benchmark`` dict), sorted by key;
    each family must have exactly one baseline (``require_baseline=False``: a folder of
    extra rows, e.g. ``configs/benchmark/regime``, whose baseline is the main folder's)."""
    rows = []
    for p in sorted(Path(config_dir).glob('*.py')):
        if p.stem.endswith('_protocol'):
            continue
        rows.append(load_row(str(p)))
    if not rows:
        raise ConfigError(f'{config_dir}: no benchmark rows found')
    for fam in sorted({r.family for r in rows}):
        base = [r.key for r in rows if r.family == fam and r.role == 'baseline']
        if len(base) > 1 or (require_baseline and not base):
            raise ConfigError(f'{config_dir}: family {fam!r} needs exactly one row with '
                              f"role='baseline' (the Δm reference), found {base}")
    return rows


def discover_preset_rows(config_dir: str, row_dirs: Sequence[str] = ()
                         ) -> Dict[str, MethodRow]:
    """``{key: row}`` of ``config_dir`` and of its subfolders ``row_dirs`` (extra rows whose
    baseline is the main folder's); a key found twice is an error (keys name the runs)."""
    found = {r.key: r for r in discover_rows(config_dir)}
    for sub in row_dirs:
        for r in discover_rows(os.path.join(config_dir, sub), require_baseline=False):
            if r.key in found:
                raise ConfigError(f'{r.config}: row key {r.key!r} is also '
                                  f'{found[r.key].config} (row keys name the runs)')
            found[r.key] = r
    return found


def get_dotted(d: Mapping, dotted: str) -> Any:
    """``d['a']['b']`` for ``'a.b'``; :data:`MISSING` if a part is absent."""
    cur: Any = d
    for part in dotted.split('.'):
        if not isinstance(cur, Mapping) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def _set(d: dict, dotted: str, value: Any, where: str) -> None:
    parts = dotted.split('.')
    cur = d
    for part in parts[:-1]:
        if not isinstance(cur.get(part), dict):
            raise ConfigError(f'{where}: model.{dotted}: model.{part} is not a dict in the row '
                              f'(got {cur.get(part)!r}); the protocol cannot set it')
        cur = cur[part]
    cur[parts[-1]] = copy.deepcopy(value)



def plain(obj: Any) -> Any:
    """ConfigDict/tuple trees -> plain dicts/lists (comparable, JSON-friendly)."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def compose(row: MethodRow, protocol_options: Optional[Mapping[str, Any]] = None) -> Config:
    """The row's runnable config (data roots, weights and schedule still to be set).

    ``protocol_options`` are ``--cfg-options``-style overrides of the protocol (applied
    before the fixed keys are taken from it, e.g. a smaller Swin in tests).
    """
    proto = _load(row.protocol)
    if protocol_options:
        proto.merge_from_dict(dict(protocol_options))
    method = _load(row.config)
    model = method.model.to_dict()
    pmodel = proto.model.to_dict()
    for key in FIXED_MODEL_KEYS:
        value = get_dotted(pmodel, key)
        if value is not MISSING:
            _set(model, key, value, row.config)
    cfg = copy.deepcopy(proto)
    cfg.model = model
    imports = list((proto.get('custom_imports') or {}).get('imports', []))
    for mod in (method.get('custom_imports') or {}).get('imports', []):
        if mod not in imports:
            imports.append(mod)
    if imports:
        cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    cfg.benchmark_row = dict(key=row.key, label=row.label, role=row.role, family=row.family,
                             config=row.config, protocol=row.protocol)
    if row.backbone_lr_mult != 1.0:
        # only then: a row without it composes the same text (the same job spec hashes)
        cfg.benchmark_row['backbone_lr_mult'] = row.backbone_lr_mult
        scale_backbone_lr(cfg, row.backbone_lr_mult, row.config)
    return cfg


#: parameter-name prefix of everything under ``model.backbone`` (mmengine's custom keys
#: match substrings of ``'<module path>.<param>'``; no head or loss parameter contains it)
BACKBONE_PARAM_KEY = 'backbone.'


def scale_backbone_lr(cfg: Config, mult: float, where: str) -> None:
    """Multiply the ``lr_mult`` of every parameter under ``model.backbone`` by ``mult``,
    through mmengine's ``paramwise_cfg.custom_keys`` (so the warm-up and cosine schedules
    scale it like the heads' lr). A protocol key on other parameters is refused: it would
    be silently shadowed for the backbone's."""
    paramwise = dict(cfg.optim_wrapper.get('paramwise_cfg') or {})
    custom = dict(paramwise.get('custom_keys') or {})
    other = sorted(k for k in custom if k != BACKBONE_PARAM_KEY)
    if other:
        raise ConfigError(f'{where}: backbone lr multiple: optim_wrapper.paramwise_cfg.'
                          f'custom_keys already has {other}; mmengine applies one key per '
                          'parameter, so the two cannot be combined')
    prev = dict(custom.get(BACKBONE_PARAM_KEY) or {})
    prev['lr_mult'] = float(prev.get('lr_mult', 1.0)) * float(mult)
    custom[BACKBONE_PARAM_KEY] = prev
    paramwise['custom_keys'] = custom
    cfg.optim_wrapper.paramwise_cfg = paramwise


def method_spec(row: MethodRow, protocol_options: Optional[Mapping[str, Any]] = None
                ) -> Dict[str, Any]:
    """What makes the row's method: its composed ``model.backbone`` without the keys the
    protocol fixes (e.g. ``{'type': 'AdaptedBackbone', 'peft': {'type': 'MTLoRA', ...}}``)."""
    backbone = plain(compose(row, protocol_options).model.get('backbone', {}))
    fixed = {k.split('.', 1)[1] for k in FIXED_MODEL_KEYS if k.startswith('backbone.')}
    return {k: v for k, v in backbone.items() if k not in fixed}


def model_delta(row: MethodRow, protocol_options: Optional[Mapping[str, Any]] = None
                ) -> Dict[str, Any]:
    """``{dotted key: row value}`` wherever the composed model differs from the protocol's
    model outside ``backbone`` (losses, loss weights, ...; empty when a row changes only
    its method, see :func:`method_spec`)."""
    composed = plain(compose(row, protocol_options).model)
    proto = _load(row.protocol)
    if protocol_options:
        proto.merge_from_dict(dict(protocol_options))
    base = plain(proto.model.to_dict())
    out: Dict[str, Any] = {}

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict) and a.get('type') == b.get('type'):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k, None), b.get(k, None), f'{prefix}.{k}' if prefix else k)
        elif a != b:
            out[prefix] = a

    for key in sorted(set(composed) | set(base)):
        if key != 'backbone':
            walk(composed.get(key), base.get(key), key)
    return out


def apply_loading_policy(cfg: Config, where: str) -> None:
    """Decoded samples cached in memory, every loader in the training process.

    ``num_workers=0``: each of the two parallel trainings has one core; a loader worker
    process would take the other training's. The first two transforms of the train
    pipeline must be the two loaders, which :class:`CachedMultiTaskLoad` replaces.
    """
    pipeline = list(cfg.train_dataloader.dataset.pipeline)
    types = [t.get('type') for t in pipeline[:2]]
    if tuple(types) != _LOADERS:
        raise ConfigError(f'{where}: train_dataloader.dataset.pipeline must start with '
                          f'{list(_LOADERS)} (replaced by CachedMultiTaskLoad), got {types}')
    tasks = pipeline[1].get('tasks')
    cached = dict(type='CachedMultiTaskLoad', decoder=pipeline[0].get('decoder', 'image'))
    if tasks is not None:
        cached['tasks'] = list(tasks)
    cfg.train_dataloader.dataset.pipeline = [cached] + pipeline[2:]
    imports = list((cfg.get('custom_imports') or {}).get('imports', []))
    if 'mtdense.benchmark.transforms' not in imports:
        imports.append('mtdense.benchmark.transforms')
    cfg.custom_imports = dict(imports=imports, allow_failed_imports=False)
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is not None:
            loader.num_workers = 0
            loader.persistent_workers = False


def set_schedule(cfg: Config, iters: int, lr: float, where: str) -> None:
    """``iters`` iterations, warm-up over the first tenth, then cosine to the end; peak lr;
    validation only after training (the tool calls it), one model-only checkpoint."""
    sched = cfg.get('param_scheduler')
    if (not isinstance(sched, Sequence) or len(sched) != 2
            or [s.get('type') for s in sched] != ['LinearLR', 'CosineAnnealingLR']):
        raise ConfigError(f'{where}: param_scheduler must be [LinearLR, CosineAnnealingLR] '
                          f'(the demo schedule), got {sched!r}')
    if iters < 2:
        raise ConfigError(f'{where}: iters must be >= 2, got {iters}')
    warm = max(1, iters // 10)
    sched[0].update(begin=0, end=warm)
    sched[1].update(begin=warm, end=iters)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    cfg.optim_wrapper.optimizer.lr = float(lr)
    ckpt = cfg.default_hooks.checkpoint
    ckpt.update(interval=iters, by_epoch=False, max_keep_ckpts=1, save_last=True,
                save_optimizer=False, save_param_scheduler=False)
    cfg.default_hooks.logger.interval = max(1, min(50, iters // 4))
