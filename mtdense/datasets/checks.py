"""Dataset checks before a run: every defect with its file, found before the first iteration.

Three levels (``data_check`` of the datasets, ``tools/check_dataset.py --level``):

* ``'off'``: existence of every listed file only (always done while the list is built);
* ``'sample'`` (default): the header of every file (image size and format, PNG mode and
  size, ``.npy`` shape and dtype, ``.mat`` variables), every map's size against its image,
  and a full decode of a few evenly spaced samples (which also gives the unit checks);
* ``'full'``: a full decode of every sample (what training would read), in parallel.

Defects are errors (a file that training would fail on, or that would silently misalign);
warnings are values that decode but look like another unit or encoding: depth with a
median above 100 (millimetres?), normals that are not unit length, or normals without any
negative component (colours in [0, 1] rather than vectors in [-1, 1]).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .io import DataFileError, decode_ann

LEVELS = ('off', 'sample', 'full')
#: samples fully decoded by the 'sample' level
SAMPLE_DECODES = 8
_PNG_DECODERS = ('label_png', 'label_png_minus1', 'parts_png', 'saliency_png', 'normals_png',
                 'edge_png')


@dataclass
class Issue:
    """One finding: the file, the sample id, what is wrong."""
    path: str
    img_id: str
    what: str

    def __str__(self) -> str:
        return f'{self.path} (id {self.img_id}): {self.what}'


@dataclass
class CheckReport:
    """Result of checking one split."""
    dataset: str
    split: str
    level: str
    num_samples: int
    files_checked: int = 0
    samples_decoded: int = 0
    defects: List[Issue] = field(default_factory=list)
    warnings: List[Issue] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out['defects'] = [asdict(d) for d in self.defects]
        out['warnings'] = [asdict(w) for w in self.warnings]
        return out

    def summary(self, max_listed: int = 20) -> str:
        lines = [f'{self.dataset} split {self.split!r} ({self.num_samples} samples, check '
                 f'{self.level!r}: {self.files_checked} file headers, {self.samples_decoded} '
                 f'samples decoded): {len(self.defects)} defect(s), {len(self.warnings)} '
                 'warning(s)']
        for title, items in (('defects', self.defects), ('warnings', self.warnings)):
            for issue in items[:max_listed]:
                lines.append(f'  {title[:-1]}: {issue}')
            if len(items) > max_listed:
                lines.append(f'  ... and {len(items) - max_listed} more {title}')
        return '\n'.join(lines)


# ------------------------------------------------------------------ headers
def _image_size(path: str) -> Tuple[Tuple[int, int], str]:
    with Image.open(path) as im:
        w, h = im.size
        return (h, w), im.mode


def _npy_header(path: str) -> Tuple[tuple, np.dtype]:
    arr = np.load(path, mmap_mode='r', allow_pickle=False)
    return tuple(arr.shape), arr.dtype


def _mat_vars(path: str) -> Dict[str, tuple]:
    from scipy.io import whosmat
    return {name: tuple(shape) for name, shape, _ in whosmat(path)}


def header_issues(entry: Dict[str, Any], hw: Tuple[int, int]) -> List[str]:
    """What is wrong with one annotation file's header for an image of size ``hw``."""
    path, decoder = entry.get('path'), entry.get('decoder')
    if path is None:
        return []  # an allowed missing file (e.g. allow_missing_parts)
    problems = []
    if decoder in _PNG_DECODERS:
        size, mode = _image_size(path)
        if size != hw:
            problems.append(f'size (h, w) {size} differs from its image {hw}')
        if decoder == 'normals_png' and mode != 'RGB':
            problems.append(f'expected an RGB PNG, got mode {mode!r}')
        elif decoder != 'normals_png' and mode not in ('L', 'P', 'I', 'I;16', 'I;16B', 'I;16L'):
            problems.append(f'expected a single-channel (grey or palette) PNG, got mode {mode!r}')
    elif decoder in ('depth_npy', 'normals_npy'):
        shape, dtype = _npy_header(path)
        want = hw + ((3,) if decoder == 'normals_npy' else ())
        if shape != want:
            problems.append(f'array shape {shape}, expected {want} (its image is {hw})')
        if not np.issubdtype(dtype, np.floating):
            problems.append(f'dtype {dtype}, expected a float array')
    elif decoder == 'edge_npy':
        shape, _ = _npy_header(path)
        if shape != hw:
            problems.append(f'array shape {shape}, expected {hw} (its image)')
    elif decoder == 'edge_labelmap_mat':
        found = _mat_vars(path).get('LabelMap')
        if found is None:
            problems.append('no "LabelMap" variable (the edges are computed from it)')
        elif found != hw:
            problems.append(f'LabelMap size {found} differs from the image {hw}')
    elif decoder == 'pascal_parts_mat':
        if 'anno' not in _mat_vars(path):
            problems.append('no struct "anno" (not a Pascal-Part annotation)')
    mask = entry.get('valid_mask_mat')
    if mask:
        found = _mat_vars(mask).get('LabelMap')
        if found is None:
            problems.append(f'{mask}: no "LabelMap" variable')
        elif found != hw:
            problems.append(f'{mask}: LabelMap size {found} differs from the image {hw}')
    return problems


def check_headers(infos: Sequence[Dict[str, Any]], report: CheckReport,
                  progress: Optional[Callable[[], None]] = None) -> None:
    """Header-level checks of every file of ``infos`` (dataset data infos)."""
    for info in infos:
        img_id = str(info.get('img_id'))
        try:
            hw, _ = _image_size(info['img_path'])
            report.files_checked += 1
            if min(hw) == 0:
                report.defects.append(Issue(info['img_path'], img_id, f'empty image {hw}'))
                continue
        except Exception as e:  # noqa: BLE001 - any unreadable header is a defect
            report.defects.append(Issue(info['img_path'], img_id, f'unreadable image ({e})'))
            continue
        for task, entry in info['ann_info'].items():
            try:
                for problem in header_issues(entry, hw):
                    report.defects.append(Issue(entry['path'], img_id, f'{task}: {problem}'))
                report.files_checked += 1
            except Exception as e:  # noqa: BLE001
                report.defects.append(Issue(str(entry.get('path')), img_id,
                                            f'{task}: unreadable ({type(e).__name__}: {e})'))
        if progress is not None:
            progress()


# ------------------------------------------------------------------ decoding
def decode_sample(info: Dict[str, Any]) -> Tuple[List[Issue], List[Issue]]:
    """Fully decode one data info; (defects, warnings)."""
    from mtdense.tasks import get_task
    from .io import decode
    img_id = str(info.get('img_id'))
    defects: List[Issue] = []
    warnings: List[Issue] = []
    try:
        img = decode('image', info['img_path'])
        # OpenCV decodes a truncated JPEG without an error (the missing rows come out grey);
        # Pillow's full load notices the missing data
        with Image.open(info['img_path']) as im:
            im.load()
    except Exception as e:  # noqa: BLE001
        return [Issue(info['img_path'], img_id, f'image: {type(e).__name__}: {e}')], []
    for task, entry in info['ann_info'].items():
        path = str(entry.get('path'))
        try:
            arr = decode_ann(entry)
        except Exception as e:  # noqa: BLE001
            defects.append(Issue(path, img_id, f'{task}: {e}'))
            continue
        if arr.shape[:2] != img.shape[:2]:
            defects.append(Issue(path, img_id, f'{task}: (H, W) {arr.shape[:2]} differs from '
                                               f'the image {img.shape[:2]}'))
        for w in get_task(task).value_warnings(arr, entry):  # e.g. depth in millimetres
            warnings.append(Issue(path, img_id, f'{task}: {w}'))
    return defects, warnings


def sample_indices(n: int, count: int = SAMPLE_DECODES) -> List[int]:
    """``count`` evenly spaced indices of ``range(n)`` (all if fewer)."""
    if n <= count:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (count - 1))) for i in range(count)})


def check_decodes(infos: Sequence[Dict[str, Any]], report: CheckReport, workers: int = 1,
                  progress: Optional[Callable[[], None]] = None) -> None:
    """Fully decode ``infos`` (in ``workers`` processes) and record what fails."""
    if workers > 1 and len(infos) > 1:
        import multiprocessing as mp
        ctx = mp.get_context('fork' if 'fork' in mp.get_all_start_methods() else 'spawn')
        with ctx.Pool(workers) as pool:
            results = pool.imap(decode_sample, infos, chunksize=max(1, len(infos) // (8 * workers)))
            for defects, warnings in results:
                _add(report, defects, warnings, progress)
    else:
        for info in infos:
            _add(report, *decode_sample(info), progress)


def _add(report: CheckReport, defects, warnings, progress) -> None:
    report.defects += defects
    report.warnings += warnings
    report.samples_decoded += 1
    if progress is not None:
        progress()


def check_dataset(dataset: Any, level: str = 'sample', workers: int = 1,
                  progress: bool = False) -> CheckReport:
    """Check a (fully initialised) mtdense dataset at ``level``; returns the report."""
    if level not in LEVELS:
        raise ValueError(f'data_check must be one of {list(LEVELS)}, got {level!r}')
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    report = CheckReport(type(dataset).__name__, str(getattr(dataset, 'split', '?')), level,
                         len(infos))
    if level == 'off':
        return report
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        total = len(infos) if level == 'full' else len(infos) + len(sample_indices(len(infos)))
        bar = ProgressBar(total)
    tick = bar.update if bar is not None else None
    if level == 'full':
        check_decodes(infos, report, workers, tick)
    else:
        check_headers(infos, report, tick)
        check_decodes([infos[i] for i in sample_indices(len(infos))], report, 1, tick)
    if bar is not None:
        bar.file.write('\n')
    return report


def raise_on_defects(report: CheckReport) -> None:
    """:class:`DataFileError` listing the defects (20, then a count), if there are any."""
    if report.defects:
        raise DataFileError(
            report.summary() + '\nFix or remove these files (tools/check_dataset.py CONFIG writes '
            "the full list), or set the dataset's data_check='off' to skip this check.")


__all__ = ['LEVELS', 'Issue', 'CheckReport', 'check_dataset', 'check_headers', 'check_decodes',
           'decode_sample', 'header_issues', 'raise_on_defects', 'sample_indices']
