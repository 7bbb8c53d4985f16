"""Common base of the multi-task dense datasets (mmengine ``BaseDataset``)."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset

from mtdense.tasks import IGNORE_INDEX, check_tasks, get_task, registered_tasks

from .io import DataFileError, decode, decode_ann

__all__ = ['BaseMultiTaskDataset', 'voc_palette']


def voc_palette(num: int) -> List[List[int]]:
    """The standard PASCAL VOC colour map: bits of the index spread over R, G, B.

    Index 0 is black, 1 is (128, 0, 0), 2 is (0, 128, 0), ..., 20 is (0, 64, 128).
    """
    palette = []
    for i in range(num):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append([r, g, b])
    return palette


class BaseMultiTaskDataset(BaseDataset):
    """A split of a multi-task dense dataset stored as one file per image and task.

    Subclasses set :attr:`AVAILABLE_TASKS` and :attr:`SPLIT_FILE` and implement
    :meth:`image_file` and :meth:`ann_entry`. Each data info is::

        dict(img_path=..., img_id=..., sample_idx=...,
             ann_info={task: dict(path=..., decoder=..., **decoder_kwargs)})

    Every listed file is checked to exist while the list is built (missing ->
    :class:`DataFileError` naming file and id). When the dataset is fully initialised
    (before the first iteration of a run) ``data_check`` checks more
    (:mod:`mtdense.datasets.checks`): ``'sample'`` (default) every file's header (size,
    format, shape, dtype) against its image plus a full decode of a few samples, ``'full'``
    a decode of every sample, ``'off'`` nothing more. Defects raise one
    :class:`DataFileError` listing them with their files; unit warnings (depth in
    millimetres, normals as colours) are logged.

    Args:
        data_root: dataset root folder (the release's top folder).
        split: split name; the ids are read from ``SPLIT_FILE.format(split=split)``.
        tasks: tasks to load (default: all the dataset provides), validated with
            :func:`mtdense.tasks.check_tasks`.
        pipeline: transforms (configs or callables).
        data_check: ``'sample'`` | ``'full'`` | ``'off'`` (see above).
        data_check_workers: processes of the ``'full'`` check.
        test_mode, indices, lazy_init, max_refetch, serialize_data: as in
            :class:`mmengine.dataset.BaseDataset`.
    """

    AVAILABLE_TASKS: Tuple[str, ...] = ()
    #: tasks read when ``tasks=None`` (None: all of :attr:`AVAILABLE_TASKS`)
    DEFAULT_TASKS: Optional[Tuple[str, ...]] = None
    #: split file relative to ``data_root``; ``{split}`` is replaced by the split name
    SPLIT_FILE: str = ''

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 tasks: Optional[Sequence[str]] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 lazy_init: bool = False,
                 max_refetch: int = 1000,
                 serialize_data: bool = True,
                 data_check: str = 'sample',
                 data_check_workers: int = 1) -> None:
        name = type(self).__name__
        from .checks import LEVELS
        if data_check not in LEVELS:
            raise ValueError(f'{name}: data_check must be one of {list(LEVELS)}, got '
                             f'{data_check!r}')
        self.data_check = data_check
        self.data_check_workers = int(data_check_workers)
        self.check_report = None
        if not data_root or not os.path.isdir(data_root):
            raise DataFileError(f'{name}: data_root {data_root!r} is not a directory')
        if not isinstance(split, str) or not split:
            raise ValueError(f'{name}: split must be a non-empty string, got {split!r}')
        self.split = split
        # set early (mmengine sets it again) so metainfo hooks can read dataset files
        self.data_root = data_root
        available = self.available_tasks
        # default: the dataset's own tasks; tasks found on disk by their layout when asked for
        default = self.AVAILABLE_TASKS if self.DEFAULT_TASKS is None else self.DEFAULT_TASKS
        self.tasks: List[str] = check_tasks(default if tasks is None else tasks,
                                            allowed=available, where=f'{name}(tasks=...)')
        metainfo = dict(self._dataset_metainfo(),
                        tasks=list(self.tasks),
                        available_tasks=list(available),
                        ignore_index=IGNORE_INDEX)
        if 'classes' in metainfo:
            metainfo['num_classes'] = len(metainfo['classes'])
        super().__init__(ann_file=self.SPLIT_FILE.format(split=split),  # mmengine joins data_root
                         metainfo=metainfo,
                         data_root=data_root,
                         data_prefix=dict(img_path=''),
                         pipeline=list(pipeline),
                         test_mode=test_mode,
                         indices=indices,
                         lazy_init=lazy_init,
                         max_refetch=max_refetch,
                         serialize_data=serialize_data)

    def full_init(self) -> None:
        """mmengine's full initialisation, then the ``data_check`` of every listed file."""
        was_init = self._fully_initialized
        super().full_init()
        if was_init or self.data_check == 'off':
            return
        from mmengine.logging import print_log

        from .checks import check_dataset, raise_on_defects
        self.check_report = check_dataset(self, self.data_check, self.data_check_workers)
        if self.check_report.warnings or self.check_report.defects:
            print_log(self.check_report.summary(), logger='current',
                      level=30 if not self.check_report.defects else 40)
        raise_on_defects(self.check_report)

    # ------------------------------------------------------------------ hooks
    @property
    def available_tasks(self) -> Tuple[str, ...]:
        """Tasks this dataset can provide: its own, plus every registered task with a
        ``default_layout`` whose folder exists under ``data_root`` (a task of your own)."""
        extra = []
        for name in registered_tasks():
            layout = get_task(name).default_layout
            if (name not in self.AVAILABLE_TASKS and layout is not None
                    and os.path.isdir(os.path.join(self.data_root, layout[0]))):
                extra.append(name)
        return tuple(self.AVAILABLE_TASKS) + tuple(extra)

    def generic_entry(self, task: str, img_id: str) -> Dict[str, Any]:
        """``<data_root>/<folder>/<id><suffix>`` read by the task's ``default_layout`` decoder."""
        folder, suffix, decoder = get_task(task).default_layout
        return dict(path=os.path.join(self.data_root, folder, f'{img_id}{suffix}'),
                    decoder=decoder)

    def _dataset_metainfo(self) -> Dict[str, Any]:
        """Dataset-level metainfo (``classes``, ``palette``, ...); class METAINFO by default."""
        return dict(self.METAINFO)

    def image_file(self, img_id: str) -> str:
        """Path of the image of ``img_id``."""
        raise NotImplementedError

    def ann_entry(self, task: str, img_id: str) -> Dict[str, Any]:
        """``dict(path=..., decoder=..., **kwargs)`` telling how to read ``task`` of ``img_id``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- listing
    def read_split(self) -> List[str]:
        """Ids of the split, one per non-empty line of the split file."""
        path = self.ann_file
        name = type(self).__name__
        if not os.path.isfile(path):
            folder = os.path.dirname(path)
            found = sorted(f[:-4] for f in os.listdir(folder) if f.endswith('.txt')) \
                if os.path.isdir(folder) else []
            raise DataFileError(f'{path}: split file of {name} split {self.split!r} not found '
                                f'(splits found next to it: {found})')
        ids: List[str] = []
        first_line: Dict[str, int] = {}
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                img_id = line.strip()
                if not img_id:
                    continue
                if len(img_id.split()) != 1:
                    raise DataFileError(f'{path}:{lineno}: expected one id per line, got {line!r}')
                if img_id in first_line:
                    raise DataFileError(f'{path}:{lineno}: id {img_id!r} listed twice (first on '
                                        f'line {first_line[img_id]})')
                first_line[img_id] = lineno
                ids.append(img_id)
        if not ids:
            raise DataFileError(f'{path}: split file of {name} split {self.split!r} lists no ids')
        return ids

    @staticmethod
    def _file_keys(entry: Dict[str, Any]) -> List[str]:
        # ``path`` plus decoder kwargs that name files (``*_path``, ``*_mat``)
        return [k for k in entry if k == 'path' or k.endswith('_path') or k.endswith('_mat')]

    def load_data_list(self) -> List[dict]:
        """Build the data infos of the split, checking that every listed file exists."""
        name = type(self).__name__
        data_list = []
        for idx, img_id in enumerate(self.read_split()):
            img_path = self.image_file(img_id)
            if not os.path.isfile(img_path):
                raise DataFileError(f'{img_path}: image of id {img_id!r} ({name} split '
                                    f'{self.split!r}) not found')
            ann_info = {}
            for task in self.tasks:
                entry = (self.ann_entry(task, img_id) if task in self.AVAILABLE_TASKS
                         else self.generic_entry(task, img_id))
                for key in self._file_keys(entry):
                    f = entry[key]
                    if f is not None and not os.path.isfile(f):
                        raise DataFileError(f'{f}: {task} file ({key}) of id {img_id!r} '
                                            f'({name} split {self.split!r}) not found')
                ann_info[task] = entry
            data_list.append(dict(img_path=img_path, img_id=img_id, sample_idx=idx,
                                  ann_info=ann_info))
        return data_list

    # ----------------------------------------------------------------- loading
    def load_sample(self, idx: int) -> Dict[str, Any]:
        """Decode the image and every task map of sample ``idx`` (no pipeline).

        Returns ``dict(img=..., img_id=..., img_path=..., gt_<task>=...)``; every
        map must have the image's (H, W), else :class:`DataFileError` names the file
        and both shapes.
        """
        info = self.get_data_info(idx)
        img = decode('image', info['img_path'])
        out: Dict[str, Any] = dict(img=img, img_id=info['img_id'], img_path=info['img_path'],
                                   sample_idx=info['sample_idx'])
        for task, entry in info['ann_info'].items():
            arr = decode_ann(entry)
            if arr.shape[:2] != img.shape[:2]:
                raise DataFileError(f'{entry["path"]}: {task} map of id {info["img_id"]!r} has '
                                    f'(H, W) {tuple(arr.shape[:2])}, expected '
                                    f'{tuple(img.shape[:2])} like its image {info["img_path"]}')
            out[f'gt_{task}'] = arr
        return out

    def __repr__(self) -> str:
        n = len(self) if self._fully_initialized else '?'
        return (f'{type(self).__name__}(data_root={self.data_root!r}, split={self.split!r}, '
                f'tasks={self.tasks}, num_samples={n})')

