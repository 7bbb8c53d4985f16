"""Dense tasks as definitions: one registered class per task, asked by every layer.

=============  ==========================  =====================================
task           ground-truth array          invalid / ignored pixels
=============  ==========================  =====================================
semseg         (H, W) uint8 class ids      255
human_parts    (H, W) uint8, 7 classes     255 (whole image if no person)
saliency       (H, W) uint8 in {0, 1}      255
normals        (H, W, 3) float32 unit xyz  all-zero vector
depth          (H, W) float32 metres > 0   0
edge           (H, W) uint8 in {0, 1}      255
=============  ==========================  =====================================

A task of your own is one file: a :class:`BaseTask` subclass (usually of
:class:`LabelTask`, :class:`ScalarTask` or :class:`VectorTask`) decorated with
:func:`register_task`, imported before the config is built (``custom_imports``). Datasets
without a reader for it read ``<data_root>/<folder>/<id><suffix>`` with its
``default_layout``.
"""
from .base import IGNORE_INDEX, BaseTask, LabelTask, ScalarTask, VectorTask
from .registry import TASKS, check_tasks, get_task, register_task, registered_tasks
# the built-in tasks (importing registers them), in their canonical order
from .semseg import SemSeg  # noqa: E402
from .human_parts import HUMAN_PARTS_CLASSES, HumanParts  # noqa: E402
from .saliency import Saliency  # noqa: E402
from .normals import Normals  # noqa: E402
from .depth import Depth  # noqa: E402
from .edge import Edge  # noqa: E402

#: former name of :func:`get_task`
get_task_spec = get_task

__all__ = ['IGNORE_INDEX', 'HUMAN_PARTS_CLASSES', 'BaseTask', 'LabelTask', 'ScalarTask',
           'VectorTask', 'TASKS', 'check_tasks', 'get_task', 'get_task_spec', 'register_task',
           'registered_tasks', 'SemSeg', 'HumanParts', 'Saliency', 'Normals', 'Depth', 'Edge']
