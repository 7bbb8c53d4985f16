"""The one stacking convention for task streams, shared by every PETL method.

Several tasks' streams travel through a backbone as **one** tensor whose batch
dimension stacks the tasks **task-major**: for ``T`` streams of ``B`` images the
tensor is ``(T*B, ...)`` and row ``t*B + b`` is image ``b`` of stream ``t``.
The transformer methods (features flagged task-specific by
:meth:`~mtdense.models.petl.BasePEFTMethod.forward_features`) and the conv
methods (the tensor flowing through the timm model of
:class:`~mtdense.models.backbones.ConvMultiTaskBackbone`) both use it.

A per-task conv or BatchNorm runs as *one* grouped op over the tasks' stacked
weights on the *channel* stack ``(B, T*C, H, W)``: :func:`tasks_to_channels`
and :func:`channels_to_tasks` convert between the two (exact copies, so a
method computes the same numbers whichever stack it is given).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Sequence, Tuple

from torch import Tensor

__all__ = ['repeat_tasks', 'split_tasks', 'unstack_tasks', 'tasks_to_channels',
           'channels_to_tasks', 'TaskStreams']


def repeat_tasks(x: Tensor, num_tasks: int) -> Tensor:
    """Stack ``num_tasks`` copies of ``x`` along the batch, task-major."""
    return x.repeat(num_tasks, *([1] * (x.dim() - 1)))


def split_tasks(x: Tensor, num_tasks: int) -> Tensor:
    """(T*M, ..., C) task-major -> (T, M*..., C) view for per-task batched products."""
    return x.reshape(num_tasks, -1, x.shape[-1])


def unstack_tasks(x: Tensor, num_tasks: int) -> Tuple[Tensor, ...]:
    """(T*B, ...) task-major -> T tensors (B, ...), one per stream (views)."""
    return x.unflatten(0, (num_tasks, x.shape[0] // num_tasks)).unbind(0)


def tasks_to_channels(x: Tensor, num_tasks: int) -> Tensor:
    """(T*B, C, H, W) task-major -> (B, T*C, H, W): the tasks stacked along channels."""
    if num_tasks == 1:
        return x
    tb, c, h, w = x.shape
    return x.reshape(num_tasks, tb // num_tasks, c, h, w).transpose(0, 1).reshape(
        tb // num_tasks, num_tasks * c, h, w)


def channels_to_tasks(y: Tensor, num_tasks: int) -> Tensor:
    """(B, T*C, H, W) -> (T*B, C, H, W) task-major; inverse of :func:`tasks_to_channels`."""
    if num_tasks == 1:
        return y
    b, tc, h, w = y.shape
    return y.reshape(b, num_tasks, tc // num_tasks, h, w).transpose(0, 1).reshape(
        num_tasks * b, tc // num_tasks, h, w)


class TaskStreams:
    """Which task streams run: the task state a backbone shares with its layers.

    Owned by the backbone (a plain object, no parameters). Per-task layers read
    :attr:`active` (the task indices of the stacked streams, in stack order) when
    they run; :meth:`use` selects a subset for the duration of a forward.
    """

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = int(num_tasks)
        self.active: List[int] = list(range(self.num_tasks))

    @contextlib.contextmanager
    def use(self, indices: Sequence[int], owner: str = 'TaskStreams') -> Iterator[None]:
        """Run only the streams of ``indices`` (in this order) inside the context."""
        indices = [int(i) for i in indices]
        if not indices or any(i < 0 or i >= self.num_tasks for i in indices) or \
                len(set(indices)) != len(indices):
            raise ValueError(f'{owner}: invalid task indices {indices} for '
                             f'{self.num_tasks} tasks')
        previous = self.active
        self.active = indices
        try:
            yield
        finally:
            self.active = previous

    def split(self, x: Tensor, channels: int, where: str) -> Tuple[int, int]:
        """Check ``x`` is ``(T'*B, channels, H, W)`` for the active streams; ``(B, T')``."""
        n = len(self.active)
        if x.dim() != 4 or x.shape[1] != channels or x.shape[0] % n:
            raise ValueError(f'{where}: expected ({n}*B, {channels}, H, W) for {n} task '
                             f'stream(s), got {tuple(x.shape)}')
        return x.shape[0] // n, n
