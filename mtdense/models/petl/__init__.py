"""The PETL core: what every parameter-efficient method and every backbone share.

* :mod:`.stacking`: the one stacking convention for task streams (task-major
  ``(T*B, ...)``), its conversions and :class:`TaskStreams` (the task state a
  backbone shares with its per-task layers);
* :mod:`.host`: :class:`BackboneHost`, the uniform view of a wrapped transformer
  backbone that transformer methods attach to;
* :mod:`.method`: :class:`BasePEFTMethod`, the base of the transformer family;
* :mod:`.conv`: :class:`ConvTaskMethod` and its slots, the base of the conv family;
* :mod:`.build`: :func:`build_method`, how a backbone builds its method (registry).

Imports go one way: ``mtdense.models.adapters`` (the methods) and
``mtdense.models.backbones`` (the hosts and backbones) import this package; it
imports neither. Backbones find the methods through the ``MODELS`` registry.
"""
from .build import build_method
from .conv import NORM_MODES, ConvSlot, ConvTaskMethod, NormSlot, TaskBatchNorm, safe_key
from .host import BackboneHost, BlockParts, BlockRef, LevelRef
from .method import (BasePEFTMethod, build_activation, check_bottleneck_args, per_stage,
                     ratio_bottlenecks, stage_bottlenecks)
from .stacking import (TaskStreams, channels_to_tasks, repeat_tasks, split_tasks,
                       tasks_to_channels, unstack_tasks)

__all__ = [
    'BackboneHost', 'BlockParts', 'BlockRef', 'LevelRef', 'BasePEFTMethod',
    'build_activation', 'per_stage', 'ratio_bottlenecks', 'check_bottleneck_args',
    'stage_bottlenecks', 'ConvTaskMethod', 'ConvSlot',
    'NormSlot', 'TaskBatchNorm', 'NORM_MODES', 'safe_key', 'TaskStreams', 'repeat_tasks',
    'split_tasks', 'unstack_tasks', 'tasks_to_channels', 'channels_to_tasks', 'build_method'
]
