"""Config edits shared by the train / test tools (one place for each rule)."""
from __future__ import annotations

from typing import Any, List

from mmengine.config import Config


class ConfigError(ValueError):
    """A config (or a command-line override) that would run, but not as intended."""

__all__ = ['ConfigError', 'drop_pretrained_paths', 'check_total_batch', 'set_eval_protocol',
           'set_saliency_protocol', 'eval_protocol_of', 'set_data_root', 'set_iters',
           'check_cfg_options', 'check_hook_configs', 'check_num_classes', 'RUNNER_KEYS',
           'set_vis_backends', 'VIS_BACKENDS']


def drop_pretrained_paths(node: Any, where: str = 'model') -> List[str]:
    """Set every pretrained-weights path in a model config to None; return what was dropped.

    A full-model checkpoint loaded strictly holds every weight, so the pretrained file
    (``AdaptedBackbone.checkpoint``, a conv backbone's ``pretrained_path``) is not needed
    and need not exist where the checkpoint is evaluated or resumed.
    """
    dropped: List[str] = []
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if key in ('checkpoint', 'pretrained_path') and isinstance(value, str):
                dropped.append(f'{where}.{key}={value}')
                node[key] = None
            else:
                dropped += drop_pretrained_paths(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            dropped += drop_pretrained_paths(value, f'{where}[{i}]')
    return dropped


def check_total_batch(cfg: Config, world_size: int) -> None:
    """Refuse a total batch other than the schedule's (``auto_scale_lr.base_batch_size``).

    A published protocol's learning rate and iteration count are for one total batch
    (per-process ``batch_size`` x processes). Another total trains another protocol;
    ``auto_scale_lr.enable`` (``--auto-scale-lr``) accepts it with mmengine's linear
    learning-rate scaling.
    """
    scale = cfg.get('auto_scale_lr')
    if not scale or scale.get('enable', False) or 'base_batch_size' not in scale:
        return
    per_process = int(cfg.train_dataloader.batch_size)
    total = per_process * int(world_size)
    base = int(scale['base_batch_size'])
    if total != base:
        raise ConfigError(
            f'{cfg.filename}: its schedule is for a total batch of {base}, but '
            f'{world_size} process(es) x train_dataloader.batch_size {per_process} = {total}. '
            f'Set --cfg-options train_dataloader.batch_size={base // max(world_size, 1)} '
            f'(if {base} is divisible by {world_size}), or pass --auto-scale-lr to scale the '
            'learning rate linearly to the batch (the iteration count stays as configured)')


def _test_pipelines(cfg: Config):
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset', {}).get('pipeline') is not None:
            yield key, loader['dataset']['pipeline']


def set_eval_protocol(cfg: Config, protocol: str) -> None:
    """Set ``protocol`` on every ``MTTestResize`` of the val/test pipelines."""
    from mtdense.datasets.transforms.test_time import check_eval_protocol
    check_eval_protocol(protocol, '--eval-protocol')
    found = False
    for _, pipeline in _test_pipelines(cfg):
        for t in pipeline:
            if isinstance(t, dict) and t.get('type') == 'MTTestResize':
                t['protocol'] = protocol
                found = True
    if not found:
        raise ConfigError(f'{cfg.filename}: --eval-protocol {protocol} needs an MTTestResize in '
                         'the test pipeline (the transform that applies the protocol); this '
                         "config's test pipeline has none")


def eval_protocol_of(cfg: Config) -> str:
    """The evaluation protocol of the test pipeline ('native' without MTTestResize)."""
    for key, pipeline in _test_pipelines(cfg):
        if key != 'test_dataloader':
            continue
        for t in pipeline:
            if isinstance(t, dict) and t.get('type') == 'MTTestResize':
                return t.get('protocol', 'native')
    return 'native'


def set_saliency_protocol(cfg: Config, protocol: str) -> None:
    """Set ``saliency_protocol`` on the val/test ``MultiTaskMetric`` evaluators."""
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(key)
        metrics = ev if isinstance(ev, (list, tuple)) else [ev] if ev else []
        for m in metrics:
            if isinstance(m, dict) and m.get('type') == 'MultiTaskMetric':
                m['saliency_protocol'] = protocol


def set_data_root(cfg: Config, root: str) -> List[str]:
    """Point every dataloader's dataset (and the top-level ``data_root``) at ``root``.

    Returns the keys changed. A config whose datasets have no ``data_root`` is an error,
    so ``--data-root`` never silently changes nothing.
    """
    changed: List[str] = []
    if 'data_root' in cfg:
        cfg.data_root = root
        changed.append('data_root')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        dataset = loader.get('dataset') if loader else None
        while isinstance(dataset, dict) and 'dataset' in dataset and 'data_root' not in dataset:
            dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
        if isinstance(dataset, dict) and 'data_root' in dataset:
            dataset['data_root'] = root
            changed.append(f'{key}.dataset.data_root')
    if not any(k.endswith('.data_root') for k in changed):
        raise ConfigError(f'{cfg.filename}: --data-root: no dataloader dataset has a data_root '
                         'to set')
    return changed


def set_iters(cfg: Config, iters: int) -> None:
    """Train for ``iters`` iterations: the loop, its validation interval, the checkpoint
    interval and every iteration-based scheduler boundary (scaled proportionally, so a
    warm-up stays the same share of the run)."""
    if int(iters) < 1:
        raise ConfigError(f'--iters must be >= 1, got {iters}')
    train_cfg = cfg.get('train_cfg')
    if not train_cfg or 'max_iters' not in train_cfg:
        raise ConfigError(f'{cfg.filename}: --iters needs an iteration-based train_cfg with '
                         f'max_iters; got train_cfg={dict(train_cfg or {})}')
    old = int(train_cfg['max_iters'])
    iters = int(iters)
    train_cfg['max_iters'] = iters
    if 'val_interval' in train_cfg:
        # a validation at the end (interval = the old length) stays at the end
        val = int(train_cfg['val_interval'])
        train_cfg['val_interval'] = iters if val >= old else max(1, min(val, iters))
    ckpt = cfg.get('default_hooks', {}).get('checkpoint')
    if ckpt and 'interval' in ckpt and int(ckpt['interval']) > iters:
        ckpt['interval'] = iters
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
        if sched.get('by_epoch', True):
            continue
        for key in ('begin', 'end', 'T_max'):
            if key in sched and sched[key] is not None:
                sched[key] = max(0, min(iters, round(int(sched[key]) * iters / old)))
        if sched.get('end') is not None and sched.get('begin', 0) >= sched['end']:
            sched['end'] = sched.get('begin', 0) + 1


#: top-level keys that mmengine's Runner, the mtdense runner or the tools read
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
    'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'runner_type', 'load_strict',
    'model_wrapper_cfg', 'find_unused_parameters', 'custom_imports'})
#: what to set instead of a top-level variable of a config file
_VARIABLE_HINTS = {
    'max_iters': '--iters N (or train_cfg.max_iters and the param_scheduler ends)',
    'warmup_iters': 'param_scheduler.0.end and param_scheduler.1.begin',
    'data_root': '--data-root DIR',
    'tasks': 'model.tasks and the dataloaders\' dataset.tasks',
    'num_classes': 'model.num_classes',
    'crop_size': 'the crop / pad sizes inside train_dataloader.dataset.pipeline',
}


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Refuse ``--cfg-options`` on top-level keys that nothing reads after parsing.

    Variables of a config file (``max_iters``, ``data_root``, ...) are used while the file
    is read (``train_cfg = dict(max_iters=max_iters)``); setting them afterwards changes
    nothing, so e.g. ``max_iters=3`` used to train the full schedule in silence.
    """
    for key in options:
        top = key.split('.')[0]
        if top in RUNNER_KEYS:
            continue
        hint = _VARIABLE_HINTS.get(top)
        raise ConfigError(
            f'--cfg-options {key}: {top!r} is not read by the runner or the tools'
            + (f' (it is a variable of {cfg.filename}, already used when the file was read, '
               if top in cfg else ' (not a key of the config, ')
            + 'so setting it changes nothing). '
            + (f'Set {hint} instead.' if hint else
               f'Top-level keys that take effect: {", ".join(sorted(RUNNER_KEYS))}.'))


def check_hook_configs(cfg: Config) -> None:
    """Unknown keys of ``default_hooks`` / ``custom_hooks`` entries are errors at build time.

    mmengine's hooks accept ``**kwargs`` (CheckpointHook for deprecated arguments), so a typo
    such as ``intervall`` used to surface only at the first save, or never.
    """
    import difflib
    import inspect

    from mtdense.registry import HOOKS
    entries = [(f'default_hooks.{name}', h) for name, h in (cfg.get('default_hooks') or {}).items()]
    entries += [(f'custom_hooks[{i}]', h) for i, h in enumerate(cfg.get('custom_hooks') or [])]
    for where, hook in entries:
        if not isinstance(hook, dict) or 'type' not in hook:
            continue
        cls = HOOKS.get(hook['type']) if isinstance(hook['type'], str) else hook['type']
        if cls is None:
            raise ConfigError(f'{where}: hook type {hook["type"]!r} is not registered')
        params = inspect.signature(cls.__init__).parameters
        named = [n for n, p in params.items() if n != 'self' and p.kind not in (
            inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
        for key in hook:
            if key in ('type', 'priority') or key in named:
                continue
            close = difflib.get_close_matches(key, named, n=1)
            raise ConfigError(f'{where}: {cls.__name__} has no argument {key!r}'
                           + (f' (did you mean {close[0]!r}?)' if close else '')
                           + f'; its arguments: {", ".join(named)}')


def check_num_classes(cfg: Config, dataset_meta: dict) -> None:
    """``model.num_classes`` must equal the number of classes of the dataset's metainfo."""
    classes = (dataset_meta or {}).get('classes')
    num = cfg.model.get('num_classes')
    if not classes or num is None:
        return
    from mtdense.tasks import get_task
    tasks = [t for t in cfg.model.get('tasks', []) if get_task(t).num_channels is None]
    values = num.items() if isinstance(num, dict) else [(t, num) for t in tasks]
    for task, n in values:
        if get_task(task).num_channels is None:
            if int(n) != len(classes):
                raise ConfigError(
                    f'{cfg.filename}: model.num_classes={n} for {task!r}, but the dataset has '
                    f'{len(classes)} classes ({", ".join(map(str, classes[:6]))}, ...); the head '
                    'would not predict the classes above its count. Set model.num_classes='
                    f'{len(classes)} (or leave it unset to take it from the dataset)')


#: --vis names -> mmengine vis backends
VIS_BACKENDS = {'local': 'LocalVisBackend', 'tensorboard': 'TensorboardVisBackend',
                'wandb': 'WandbVisBackend'}


def set_vis_backends(cfg: Config, names: List[str]) -> None:
    """Log scalars and panels to these backends (``--vis local tensorboard wandb``)."""
    unknown = [n for n in names if n not in VIS_BACKENDS]
    if unknown:
        raise ConfigError(f'--vis: unknown backend(s) {unknown}; choose from {sorted(VIS_BACKENDS)}')
    for name, module in (('tensorboard', 'tensorboard'), ('wandb', 'wandb')):
        if name in names:
            try:
                __import__(module)
            except ImportError:
                raise ConfigError(f'--vis {name} needs the {module!r} package: pip install '
                                  f'{module}') from None
    vis = cfg.get('visualizer')
    if not vis:
        raise ConfigError(f'{cfg.filename}: --vis needs a visualizer in the config')
    vis['vis_backends'] = [dict(type=VIS_BACKENDS[n]) for n in dict.fromkeys(names)]
