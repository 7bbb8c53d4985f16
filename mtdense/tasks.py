"""Dense task definitions shared by datasets, transforms, models and metrics.

Ground-truth conventions (NaN-free; validity is explicit in the values):

=============  ======  ==========================  =====================================
task           kind    ground-truth array           invalid / ignored pixels
=============  ======  ==========================  =====================================
semseg         seg     (H, W) uint8 class ids       255
human_parts    seg     (H, W) uint8, 7 classes      255 (whole image if no person)
saliency       binary  (H, W) uint8 in {0, 1}       255
normals        normals (H, W, 3) float32 unit xyz   all-zero vector
depth          depth   (H, W) float32 metres > 0    0
=============  ======  ==========================  =====================================

Predictions: seg -> C logits, binary -> 1 logit, normals -> 3 channels (unit length
after ``postprocess``), depth -> 1 channel (positive after ``postprocess``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

IGNORE_INDEX = 255

HUMAN_PARTS_CLASSES: Tuple[str, ...] = ('background', 'head', 'torso', 'upper_arm',
                                        'lower_arm', 'upper_leg', 'lower_leg')


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about one dense task."""
    name: str
    kind: str  # 'seg' | 'binary' | 'normals' | 'depth'
    num_channels: Optional[int]  # None: set by the dataset (number of classes)
    primary_metric: str
    higher_is_better: bool

    def out_channels(self, num_classes: Optional[int] = None) -> int:
        """Channels of the head output for this task."""
        if self.num_channels is not None:
            return self.num_channels
        if num_classes is None:
            raise ValueError(f'task {self.name!r} needs num_classes (from the dataset metainfo)')
        return int(num_classes)


TASKS: Dict[str, TaskSpec] = {
    'semseg': TaskSpec('semseg', 'seg', None, 'mIoU', True),
    'human_parts': TaskSpec('human_parts', 'seg', len(HUMAN_PARTS_CLASSES), 'mIoU', True),
    'saliency': TaskSpec('saliency', 'binary', 1, 'mIoU', True),
    'normals': TaskSpec('normals', 'normals', 3, 'mErr', False),
    'depth': TaskSpec('depth', 'depth', 1, 'rmse', False),
}


def get_task_spec(name: str) -> TaskSpec:
    """Return the :class:`TaskSpec` of ``name``; clear error for unknown names.

    A name like ``semseg_2`` (a cloned task used for profiling) maps onto the
    spec of its base task ``semseg``.
    """
    if name in TASKS:
        return TASKS[name]
    base, _, suffix = name.rpartition('_')
    if base in TASKS and suffix.isdigit():
        return TASKS[base]
    raise KeyError(f'unknown task {name!r}; expected one of {sorted(TASKS)} '
                   f'(or a clone such as "semseg_2")')


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
        get_task_spec(t)
        if t in seen:
            raise ValueError(f'{where}: task {t!r} listed twice in {tasks}')
        seen.add(t)
    if allowed is not None:
        allowed = list(allowed)
        bad = [t for t in tasks if t not in allowed]
        if bad:
            raise ValueError(f'{where}: tasks {bad} are not provided here; available: {allowed}')
    return tasks
