"""The one checkpoint reader of mtdense: safe, and clear about what is wrong.

Every checkpoint or state-dict file mtdense reads (training resumes, ``tools/test.py``,
the inference API, backbone weights of every family, PEFT exports, conversions)
goes through :func:`safe_load`:

* ``.safetensors`` files are read with safetensors; everything else with
  ``torch.load(weights_only=True)``, so nothing in a file is executed. A file that
  needs anything else fails with :class:`UnsafeCheckpointError` naming the file and
  the refused global.
* A file that is not a complete checkpoint (empty, truncated by an interrupted save,
  damaged -- the CRC-32 of torch's zip records is checked -- or not a checkpoint at
  all) fails with :class:`CorruptCheckpointError` naming the file and what is wrong,
  instead of torch's ``EOFError`` / "failed finding central directory".

:func:`state_dict_from` then takes the model state out of what was loaded (one
``state_dict`` / ``model`` / ``module`` wrapper, a DDP ``module.`` prefix) and
:func:`read_state_dict` does both. Converting key formats (Swin/ViT families, timm
CNNs) and loading into a model are the callers' business.

This package depends on torch and safetensors only, so that both
``mtdense.models`` and ``mtdense.engine`` use it without importing each other.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch

__all__ = ['CheckpointReadError', 'UnsafeCheckpointError', 'CorruptCheckpointError',
           'CheckpointMismatchError', 'safe_load', 'check_checkpoint_safe', 'state_dict_from',
           'read_state_dict']


class CheckpointReadError(Exception):
    """A checkpoint file could not be read; ``path`` names it."""

    def __init__(self, message: str, path: str = '') -> None:
        super().__init__(message)
        self.path = path


class UnsafeCheckpointError(CheckpointReadError, pickle.UnpicklingError):
    """A checkpoint needs objects outside the safe (weights-only) set."""


class CorruptCheckpointError(CheckpointReadError, ValueError):
    """A checkpoint file is empty, truncated, damaged or not a checkpoint at all.

    ``kind`` is one of ``'empty'``, ``'truncated'``, ``'corrupt'``, ``'not_a_checkpoint'``.
    """

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f'{path}: {detail}', path)
        self.kind = kind
        self.detail = detail

    def __reduce__(self):  # picklable (e.g. across processes) despite the 3 arguments
        return type(self), (self.path, self.kind, self.detail)


#: first bytes of torch's zip format (torch >= 1.6) and of a pickle (protocol >= 2),
#: which torch's legacy format starts with
_ZIP_MAGIC = b'PK\x03\x04'
_PROTO = 0x80
_INTERRUPTED = ('; a save that was interrupted (process killed, disk full) or an incomplete '
                'copy leaves such a file')


def safe_load(filename: Union[str, os.PathLike],
              map_location: Optional[Union[str, torch.device, Callable]] = 'cpu') -> Any:
    """Load a checkpoint without executing pickled code.

    ``.safetensors`` files are read with safetensors; everything else with
    ``torch.load(weights_only=True)``. Raises :class:`FileNotFoundError`,
    :class:`CorruptCheckpointError` (empty, truncated, damaged -- torch's zip
    checksums are verified -- or not a checkpoint) or :class:`UnsafeCheckpointError`,
    each naming the file.
    """
    filename = os.fspath(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename} (it does not exist)')
    size = osp.getsize(filename)
    if size == 0:
        raise CorruptCheckpointError(filename, 'empty', 'empty file (0 bytes), not a checkpoint'
                                     + _INTERRUPTED)
    if filename.endswith('.safetensors'):
        return _load_safetensors(filename, map_location)
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head == _ZIP_MAGIC or _ZIP_MAGIC.startswith(head):  # (a few bytes of) a zip
        _check_zip(filename, size)
    elif head[0] != _PROTO:
        # torch never writes anything else; text, JSON, images, ... end up here
        _raise_not_torch(filename, size)
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if _names_refused_global(e):
            raise UnsafeCheckpointError(
                f'refused to load {filename}: it contains objects outside the weights-only safe '
                f'set, and loading them could run arbitrary code. Only load such a file if you '
                f'trust it, with torch.load(..., weights_only=False) yourself. Details: '
                f'{_refusal_detail(e)}', filename) from e
        # the weights-only unpickler stopped at an opcode: say whether the file is a
        # pickle that needs code (refused as unsafe) or not a checkpoint
        _raise_not_torch(filename, size, cause=e)
    except EOFError as e:
        raise CorruptCheckpointError(
            filename, 'truncated', f'truncated: the data ends early ({size} bytes)'
            + _INTERRUPTED) from e
    except RuntimeError as e:
        if 'unexpected EOF' in str(e):  # legacy format: tensor data cut short
            raise CorruptCheckpointError(
                filename, 'truncated', f'truncated: the tensor data ends early ({size} bytes)'
                + _INTERRUPTED) from e
        if 'PytorchStreamReader' in str(e):
            raise CorruptCheckpointError(
                filename, 'corrupt', f'corrupt torch checkpoint ({size} bytes): '
                f'{str(e).splitlines()[0]}') from e
        raise
    except (KeyError, ValueError, IndexError, TypeError, AttributeError) as e:
        # torch's legacy reader on a pickle stream that is not one of its files
        _raise_not_torch(filename, size, cause=e)


def _load_safetensors(filename: str, map_location) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(filename, device=str(device))
    except SafetensorError as e:
        raise CorruptCheckpointError(
            filename, 'corrupt', f'not a valid safetensors file ({e}); truncated or damaged'
            + _INTERRUPTED) from e


def _check_zip(filename: str, size: int) -> None:
    """Raise :class:`CorruptCheckpointError` for a truncated or damaged zip checkpoint.

    The zip directory sits at the end of the file, so a truncated file has none. The
    CRC-32 torch stores for every record is verified: torch itself does not check it
    when loading, so a damaged tensor would load as plausible wrong numbers.
    """
    if not zipfile.is_zipfile(filename):
        raise CorruptCheckpointError(
            filename, 'truncated', f'truncated: a torch zip checkpoint without the directory '
            f'that ends a complete file ({size} bytes)' + _INTERRUPTED)
    try:
        with zipfile.ZipFile(filename) as zf, open(filename, 'rb') as raw:
            infos = zf.infolist()
            if not any(i.filename.endswith('/data.pkl') or i.filename == 'data.pkl'
                       for i in infos):
                raise CorruptCheckpointError(
                    filename, 'not_a_checkpoint', 'not a checkpoint: a zip archive without the '
                    "'data.pkl' record torch.save writes")
            for info in infos:
                # CRC 0: written with torch.serialization.set_crc32_options(False)
                if info.CRC != 0 and _record_crc(zf, raw, info) != info.CRC:
                    raise CorruptCheckpointError(
                        filename, 'corrupt', f'corrupt: record {info.filename!r} fails its '
                        f'CRC-32 check (the file was damaged or modified after it was written)')
    except (zipfile.BadZipFile, EOFError, OSError, struct.error) as e:
        raise CorruptCheckpointError(
            filename, 'corrupt', f'corrupt zip checkpoint ({size} bytes): {e}') from e


def _record_crc(zf: zipfile.ZipFile, raw: Any, info: zipfile.ZipInfo) -> int:
    """CRC-32 of one record's data. torch stores records uncompressed; they are read
    from the file directly because zipfile's reader raises on any CRC mismatch,
    including the CRC 0 of files saved without checksums."""
    if info.compress_type != zipfile.ZIP_STORED:
        crc = 0
        with zf.open(info) as member:  # zipfile checks the CRC itself
            for chunk in iter(lambda: member.read(1 << 22), b''):
                crc = zlib.crc32(chunk, crc)
        return crc
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) != 30 or header[:4] != _ZIP_MAGIC:
        raise zipfile.BadZipFile(f'bad local header of record {info.filename!r}')
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    raw.seek(info.header_offset + 30 + name_len + extra_len)
    crc, left = 0, info.compress_size
    while left:
        chunk = raw.read(min(left, 1 << 22))
        if not chunk:
            raise EOFError(f'record {info.filename!r} ends early')
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    return crc


_TEXT_OPS = ('SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'SHORT_BINSTRING',
             'BINSTRING', 'STRING')


def _raise_not_torch(filename: str, size: int, cause: Optional[BaseException] = None) -> None:
    """Classify a file torch cannot read, scanning its pickle opcodes only (nothing is
    unpickled): a pickle naming globals (unsafe), a truncated pickle, a plain data
    pickle, or not a pickle at all."""
    import pickletools
    refs: list = []
    strings: list = []
    parsed, exhausted = False, False
    with open(filename, 'rb') as f:
        is_proto = f.read(1) == bytes([_PROTO])
        f.seek(0)
        try:
            for op, arg, _ in pickletools.genops(f):
                if op.name in _TEXT_OPS:
                    strings.append(str(arg))
                elif op.name in ('GLOBAL', 'INST'):
                    refs.append(str(arg).replace(' ', '.'))
                elif op.name == 'STACK_GLOBAL':
                    refs.append('.'.join(strings[-2:]))
            parsed = True
        except ValueError as e:
            exhausted = 'exhausted' in str(e)
    # Text and random bytes can parse as a few opcodes by chance: only a stream that
    # starts like torch's pickles (PROTO) or parses completely counts as a pickle.
    if refs and (is_proto or parsed):
        raise UnsafeCheckpointError(
            f'refused to load {filename}: it is a pickle that references {refs[:5]}; '
            f'unpickling it could run arbitrary code. Only load such a file if you trust it, '
            f'with torch.load(..., weights_only=False) yourself.', filename) from cause
    if is_proto and exhausted:
        raise CorruptCheckpointError(
            filename, 'truncated', f'truncated: the pickle data ends early ({size} bytes)'
            + _INTERRUPTED) from cause
    if parsed:
        raise CorruptCheckpointError(
            filename, 'not_a_checkpoint', f'not a checkpoint: a plain pickle of data '
            f'(pickle.dump, not torch.save; {size} bytes)') from cause
    raise CorruptCheckpointError(
        filename, 'not_a_checkpoint', f"not a checkpoint: neither torch's zip format nor a "
        f'pickle ({size} bytes)') from cause


def _names_refused_global(err: Exception) -> bool:
    """Whether torch's weights-only error is about a global it refuses (its message then
    names it as ``GLOBAL module.name``), rather than an opcode it cannot read."""
    return 'GLOBAL' in str(err)


def _refusal_detail(err: Exception) -> str:
    """The informative line of torch's weights-only error (the refused global)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    # torch's message is: a generic paragraph, the specific reason, a link to the docs
    for ln in lines:
        if 'GLOBAL' in ln or 'Unsupported' in ln or 'unsupported' in ln:
            return ln
    return lines[-1] if lines else repr(err)


def check_checkpoint_safe(filename: Union[str, os.PathLike]) -> None:
    """Raise :class:`UnsafeCheckpointError` if ``filename`` needs unsafe globals, and
    :class:`CorruptCheckpointError` if it is empty, truncated, damaged or no checkpoint.

    Lets tools fail before building models and dataloaders. For torch's zip format
    the records' checksums are verified and the pickle opcodes scanned (nothing is
    unpickled); legacy files are checked by :func:`safe_load` itself.
    """
    filename = os.fspath(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename} (it does not exist)')
    if filename.endswith('.safetensors'):
        return  # tensors and string metadata only, by construction
    if not zipfile.is_zipfile(filename) or osp.getsize(filename) == 0:
        safe_load(filename)  # legacy format, or the error saying what the file is
        return
    _check_zip(filename, osp.getsize(filename))
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except RuntimeError as e:  # a zip archive torch cannot read
        raise CorruptCheckpointError(filename, 'corrupt',
                                     f'corrupt torch checkpoint: {str(e).splitlines()[0]}') from e
    if unsafe:
        raise UnsafeCheckpointError(
            f'refused to load {filename}: it references {unsafe[:5]}, outside the weights-only '
            f'safe set; unpickling it could run arbitrary code. Only load such a file if you '
            f'trust it, with torch.load(..., weights_only=False) yourself.', filename)


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model it is loaded into
    (or what was loaded is no state dict at all)."""


#: wrappers around a model state dict, tried in this order (mmengine, timm/official, DeepSpeed)
WRAPPERS = ('state_dict', 'model', 'module')


def state_dict_from(obj: Any, source: str,
                    wrappers: Sequence[str] = WRAPPERS) -> Dict[str, torch.Tensor]:
    """The model state dict (name -> tensor) inside a loaded checkpoint ``obj``.

    The first of ``wrappers`` that holds a dict is unwrapped (mmengine's
    ``{'state_dict': ...}``, ``{'model': ...}``, ...), and a ``module.`` prefix on every
    key (a DDP-wrapped model) is removed. Anything else raises
    :class:`CheckpointMismatchError` naming ``source``.
    """
    found = obj
    if isinstance(obj, dict):
        for key in wrappers:
            if isinstance(obj.get(key), dict):
                found = obj[key]
                break
    expected = ("expected a state dict of tensors or a dict with a 'state_dict' entry (as "
                'tools/train.py writes)')
    if not isinstance(found, dict):
        raise CheckpointMismatchError(f'{source}: not a model checkpoint: {expected}, got '
                                      f'{type(obj).__name__}')
    bad = [k for k, v in found.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointMismatchError(
            f'{source}: not a model checkpoint: entries {bad[:5]} are not tensors; {expected}'
            + (f'; its keys: {sorted(map(str, obj))[:10]}' if found is obj else ''))
    state = OrderedDict(found)
    if state and all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state


def read_state_dict(path: Union[str, os.PathLike],
                    wrappers: Sequence[str] = WRAPPERS) -> Dict[str, torch.Tensor]:
    """:func:`safe_load` ``path`` on the CPU, then :func:`state_dict_from`."""
    path = os.fspath(path)
    return state_dict_from(safe_load(path, map_location='cpu'), path, wrappers)
