"""Building a PETL method from its config (both families)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch.nn as nn

__all__ = ['build_method']


def build_method(cfg: Mapping, tasks: Sequence[str], base: type, what: str,
                 expected: str) -> nn.Module:
    """Build ``cfg`` (with ``tasks`` filled in) through the ``MODELS`` registry.

    The method types are found by the registry (``mtdense.models`` registers them), so
    backbones never import the methods. Raises ``TypeError`` naming ``what`` (e.g.
    ``'AdaptedBackbone: peft'``) unless the result is a ``base``.
    """
    from mtdense.registry import MODELS
    method_cfg = dict(cfg)
    method_cfg['tasks'] = list(tasks)
    method = MODELS.build(method_cfg)
    if not isinstance(method, base):
        raise TypeError(f"{what} type {cfg['type']!r} built a {type(method).__name__}, "
                        f'expected {expected}')
    return method
