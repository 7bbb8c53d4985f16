"""Config edits shared by the train / test tools (one place for each rule)."""
from __future__ import annotations

from typing import Any, List

from mmengine.config import Config

__all__ = ['drop_pretrained_paths', 'check_total_batch', 'set_eval_protocol',
           'set_saliency_protocol', 'eval_protocol_of']


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
        raise ValueError(
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
        raise ValueError(f'{cfg.filename}: --eval-protocol {protocol} needs an MTTestResize in '
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
