"""The task registry: ``register_task`` (a class decorator) and lookups by name."""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Type

from .base import BaseTask

_TASKS: Dict[str, BaseTask] = {}

__all__ = ['register_task', 'get_task', 'check_tasks', 'TASKS', 'registered_tasks']


def register_task(cls: Type[BaseTask]) -> Type[BaseTask]:
    """Register a task definition class under its ``name`` (one instance is kept)."""
    if not (isinstance(cls, type) and issubclass(cls, BaseTask)) or not cls.name:
        raise TypeError(f'register_task: {cls!r} must be a BaseTask subclass with a name')
    base, _, suffix = cls.name.rpartition('_')
    if suffix.isdigit() and base:
        raise ValueError(f'register_task: {cls.name!r} ends in _<digits>, which is how clones '
                         f'of a task are named (e.g. semseg_2); choose another name')
    existing = _TASKS.get(cls.name)
    if existing is not None and type(existing).__qualname__ != cls.__qualname__:
        raise KeyError(f'register_task: a task named {cls.name!r} is already registered '
                       f'({type(existing).__module__}.{type(existing).__qualname__})')
    _TASKS[cls.name] = cls()
    return cls


def registered_tasks() -> List[str]:
    return list(_TASKS)


def get_task(name: str) -> BaseTask:
    """The definition of ``name``; a clone such as ``semseg_2`` maps onto ``semseg``'s."""
    if name in _TASKS:
        return _TASKS[name]
    base, _, suffix = str(name).rpartition('_')
    if base in _TASKS and suffix.isdigit():
        return _TASKS[base]
    raise KeyError(f'unknown task {name!r}; expected one of {sorted(_TASKS)} (or a clone such '
                   f'as "semseg_2"; a task of your own: define it in one file with '
                   f'@mtdense.tasks.register_task and import it, e.g. via custom_imports)')


def check_tasks(tasks: Iterable[str], allowed: Optional[Iterable[str]] = None,
                where: str = 'tasks') -> List[str]:
    """Validate a task list (known names, no duplicates, subset of ``allowed``)."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError(f'{where}: the task list is empty')
    seen = set()
    for t in tasks:
        if not isinstance(t, str):
            raise TypeError(f'{where}: task names must be strings, got {t!r}')
        get_task(t)
        if t in seen:
            raise ValueError(f'{where}: task {t!r} listed twice in {tasks}')
        seen.add(t)
    if allowed is not None:
        allowed = list(allowed)
        bad = [t for t in tasks if t not in allowed]
        if bad:
            raise ValueError(f'{where}: tasks {bad} are not provided here; available: {allowed}')
    return tasks


class _TaskTable(Mapping):
    """Read-only view name -> definition of the registered tasks (registration order)."""

    def __getitem__(self, name: str) -> BaseTask:
        return _TASKS[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(_TASKS))

    def __len__(self) -> int:
        return len(_TASKS)


TASKS: Mapping[str, BaseTask] = _TaskTable()
