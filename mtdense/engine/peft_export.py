"""PEFT-only export: save the trained state of a model without its frozen backbone.

A parameter-efficient model is a frozen pretrained backbone plus a small trained
state. :func:`export_peft` writes that state alone:

* **tensors**: every entry of ``model.state_dict()`` except the frozen parameters
  (``requires_grad=False``), i.e. the adapters / KEMs / heads / trained norms and
  all buffers (e.g. the heads' BatchNorm running statistics, which training
  changes although they are not parameters). Loading them onto a model built from
  the same config with the same frozen backbone restores the whole state exactly.
* **metadata** (plain strings): the format tag, the model's tasks, the backbone
  config (type, architecture, PETL method) and a fingerprint of the frozen
  parameters: their names, dtypes and shapes, and a SHA-256 of their values. A
  model whose frozen backbone differs (another architecture, or other pretrained
  weights) is detected when loading.

``.safetensors`` files keep the metadata in the safetensors header; ``.pth`` files
hold ``{'mtdense_peft': {'tensors': ..., 'metadata': ...}}`` with only tensors and
strings, so they load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['PEFT_FORMAT', 'PeftExportError', 'BackboneMismatchError', 'split_trained_frozen',
           'frozen_fingerprint', 'export_peft', 'read_peft', 'check_backbone', 'load_peft']

PEFT_FORMAT = 'mtdense-peft'
PEFT_FORMAT_VERSION = '1'
_PTH_KEY = 'mtdense_peft'
_SUFFIXES = ('.safetensors', '.pth', '.pt')

PathLike = Union[str, os.PathLike]


class PeftExportError(ValueError):
    """A PEFT export cannot be written, read, or applied to a model."""


class BackboneMismatchError(PeftExportError):
    """The model's frozen backbone is not the one the PEFT export was trained on."""


def _unwrap(model: nn.Module) -> nn.Module:
    # DDP / mmengine wrappers keep the real model in ``.module``
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def split_trained_frozen(model: nn.Module) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """Split ``model.state_dict()`` into (trained state, frozen parameters).

    Frozen = parameters with ``requires_grad=False``; everything else (trainable
    parameters and all buffers) is trained state.
    """
    trained: Dict[str, Tensor] = {}
    frozen: Dict[str, Tensor] = {}
    for name, value in _unwrap(model).state_dict(keep_vars=True).items():
        if isinstance(value, nn.Parameter) and not value.requires_grad:
            frozen[name] = value.detach()
        else:
            trained[name] = value.detach()
    return trained, frozen


def _tensor_bytes(t: Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b''


def frozen_fingerprint(model: nn.Module) -> Dict[str, Any]:
    """Identity of the frozen backbone: structure (name, dtype, shape) and SHA-256.

    The hash covers, in sorted name order, each frozen parameter's name, dtype,
    shape and raw bytes, so it changes with the architecture and with the weights.
    """
    _, frozen = split_trained_frozen(model)
    digest = hashlib.sha256()
    structure: List[List[Any]] = []
    for name in sorted(frozen):
        t = frozen[name]
        dtype, shape = str(t.dtype).replace('torch.', ''), list(t.shape)
        structure.append([name, dtype, shape])
        digest.update(json.dumps([name, dtype, shape]).encode())
        digest.update(_tensor_bytes(t))
    return dict(sha256=digest.hexdigest(), structure=structure,
                numel=int(sum(t.numel() for t in frozen.values())))


def _check_suffix(path: str, what: str) -> str:
    if not path.endswith(_SUFFIXES):
        raise PeftExportError(f'{what} {path!r}: expected a file name ending in one of '
                              f'{_SUFFIXES}')
    return path


def export_peft(model: nn.Module, path: PathLike, backbone_cfg: Optional[Mapping] = None,
                extra_metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Write the trained state of ``model`` and its backbone identity to ``path``.

    Args:
        model: the trained model (a DDP wrapper is unwrapped).
        path: ``.safetensors`` (recommended) or ``.pth``/``.pt``.
        backbone_cfg: the backbone config the model was built from (recorded so a
            reader knows which pretrained backbone to build; checkpoint paths are
            best removed by the caller, they are machine specific).
        extra_metadata: more JSON-serialisable facts (source checkpoint, iteration).

    Returns:
        A summary: number of tensors / elements written, the fingerprint, the path.
    """
    path = _check_suffix(os.fspath(path), 'export_peft: output')
    model = _unwrap(model)
    trained, _ = split_trained_frozen(model)
    if not trained:
        raise PeftExportError(f'export_peft: {type(model).__name__} has no trainable parameters '
                              'or buffers; nothing to export')
    fp = frozen_fingerprint(model)
    metadata = {
        'format': PEFT_FORMAT,
        'format_version': PEFT_FORMAT_VERSION,
        'model_type': type(model).__name__,
        'tasks': json.dumps(list(getattr(model, 'tasks', []) or [])),
        'backbone_cfg': json.dumps(dict(backbone_cfg) if backbone_cfg is not None else None,
                                   sort_keys=True, default=str),
        'frozen_sha256': fp['sha256'],
        'frozen_numel': str(fp['numel']),
        'frozen_structure': json.dumps(fp['structure']),
        'trained_numel': str(int(sum(t.numel() for t in trained.values()))),
        'extra': json.dumps(dict(extra_metadata or {}), sort_keys=True, default=str),
    }
    try:
        from mtdense.version import __version__
        metadata['mtdense_version'] = __version__
    except ImportError:  # pragma: no cover - only when the package is vendored oddly
        pass
    # Clone: safetensors refuses tensors sharing storage (tied weights, views).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in trained.items()}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(tensors, path, metadata=metadata)
    else:
        torch.save({_PTH_KEY: {'tensors': tensors, 'metadata': metadata}}, path)
    return dict(path=path, num_tensors=len(tensors),
                numel=int(sum(t.numel() for t in tensors.values())),
                frozen_sha256=fp['sha256'], frozen_numel=fp['numel'])


def read_peft(path: PathLike) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """Read ``(tensors, metadata)`` of a PEFT export without unpickling code."""
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'PEFT export not found: {path}')
    _check_suffix(path, 'read_peft: input')
    if path.endswith('.safetensors'):
        from safetensors import safe_open
        try:
            with safe_open(path, framework='pt', device='cpu') as f:
                metadata = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types
            raise PeftExportError(f'{path}: not a readable safetensors file ({e})') from e
    else:
        from .checkpoint import safe_load
        obj = safe_load(path)
        if not isinstance(obj, dict) or _PTH_KEY not in obj:
            raise PeftExportError(f'{path}: expected a PEFT export with a top-level '
                                  f'{_PTH_KEY!r} key (tools/export_peft.py); this looks like '
                                  'a full checkpoint, use tools/export_peft.py to convert it')
        tensors, metadata = obj[_PTH_KEY]['tensors'], dict(obj[_PTH_KEY]['metadata'])
    if metadata.get('format') != PEFT_FORMAT:
        raise PeftExportError(f'{path}: metadata "format" is {metadata.get("format")!r}, '
                              f'expected {PEFT_FORMAT!r} (written by mtdense export_peft)')
    if metadata.get('format_version') != PEFT_FORMAT_VERSION:
        raise PeftExportError(f'{path}: format_version {metadata.get("format_version")!r} is '
                              f'not supported (this mtdense reads {PEFT_FORMAT_VERSION!r})')
    return tensors, metadata


def _describe_structure_diff(expected: List[List[Any]], actual: List[List[Any]],
                             limit: int = 5) -> str:
    exp = {n: (d, tuple(s)) for n, d, s in expected}
    act = {n: (d, tuple(s)) for n, d, s in actual}
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    changed = sorted(n for n in set(exp) & set(act) if exp[n] != act[n])
    parts = []
    if missing:
        parts.append(f'{len(missing)} frozen parameters of the export\'s backbone are not frozen '
                     f'parameters of this model, e.g. {missing[:limit]}')
    if extra:
        parts.append(f'{len(extra)} frozen parameters of this model were not in the export\'s '
                     f'backbone, e.g. {extra[:limit]}')
    if changed:
        parts.append('dtype/shape differ for ' + ', '.join(
            f'{n}: export {exp[n]} vs model {act[n]}' for n in changed[:limit]))
    return '; '.join(parts)


def check_backbone(model: nn.Module, metadata: Mapping[str, str], path: str = '<export>') -> None:
    """Raise :class:`BackboneMismatchError` unless the frozen backbone matches."""
    fp = frozen_fingerprint(model)
    if fp['sha256'] == metadata.get('frozen_sha256'):
        return
    expected = json.loads(metadata.get('frozen_structure', '[]'))
    diff = _describe_structure_diff(expected, fp['structure'])
    bb_cfg = metadata.get('backbone_cfg', 'null')
    if diff:
        raise BackboneMismatchError(
            f'{path}: the model\'s frozen backbone has a different architecture or freezing than '
            f'the one the export was trained with ({diff}). Export backbone config: {bb_cfg}')
    raise BackboneMismatchError(
        f'{path}: the model\'s frozen backbone has the same architecture but different weights '
        f'(frozen SHA-256 {fp["sha256"][:16]}... vs {metadata.get("frozen_sha256", "")[:16]}... '
        f'in the export). Build the model with the pretrained backbone checkpoint the export was '
        f'trained on. Export backbone config: {bb_cfg}')


def load_peft(model: nn.Module, path: PathLike, strict: bool = True,
              check_backbone_weights: bool = True) -> Dict[str, List[str]]:
    """Restore a PEFT export onto ``model`` (built from the config, frozen backbone loaded).

    Nothing is modified if an error is raised.

    Args:
        model: the model to update in place (a DDP wrapper is unwrapped).
        path: file written by :func:`export_peft`.
        strict: raise on keys the model trains but the file lacks (missing) and on
            keys of the file the model does not train (unexpected). With
            ``strict=False`` the common keys are loaded and both lists returned.
        check_backbone_weights: compare the frozen backbone's fingerprint with the
            export's; disable only when deliberately moving adapters to another
            backbone.

    Returns:
        ``{'loaded': [...], 'missing': [...], 'unexpected': [...]}``.

    Raises:
        BackboneMismatchError: frozen backbone differs (architecture or weights).
        PeftExportError: missing/unexpected keys (strict) or shape mismatches.
    """
    path = os.fspath(path)
    model = _unwrap(model)
    tensors, metadata = read_peft(path)
    if check_backbone_weights:
        check_backbone(model, metadata, path)
    trained, frozen = split_trained_frozen(model)
    missing = sorted(set(trained) - set(tensors))
    unexpected = sorted(set(tensors) - set(trained))
    if strict and (missing or unexpected):
        lines = [f'{path}: the export does not match the trained state of this '
                 f'{type(model).__name__}']
        if missing:
            lines.append(f'  missing ({len(missing)}): {missing[:8]}')
        if unexpected:
            frozen_here = [k for k in unexpected if k in frozen]
            lines.append(f'  unexpected ({len(unexpected)}): {unexpected[:8]}')
            if frozen_here:
                lines.append(f'  of these, {len(frozen_here)} are frozen in this model '
                             f'(e.g. {frozen_here[:3]}): the PETL method or its freezing '
                             'switches differ from the exported run')
        lines.append('  (the config must build the same PETL method, tasks and heads; '
                     'load_peft(..., strict=False) loads the common keys)')
        raise PeftExportError('\n'.join(lines))
    common = sorted(set(tensors) & set(trained))
    bad_shapes = [f'{k}: file {tuple(tensors[k].shape)} vs model {tuple(trained[k].shape)}'
                  for k in common if tuple(tensors[k].shape) != tuple(trained[k].shape)]
    if bad_shapes:
        raise PeftExportError(f'{path}: shape mismatch for {len(bad_shapes)} tensors: '
                              + '; '.join(bad_shapes[:8]))
    result = model.load_state_dict({k: tensors[k] for k in common}, strict=False)
    if result.unexpected_keys:  # cannot happen: keys come from the model's state_dict
        raise PeftExportError(f'{path}: load_state_dict rejected {result.unexpected_keys[:8]}')
    return dict(loaded=common, missing=missing, unexpected=unexpected)
