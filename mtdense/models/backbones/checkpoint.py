"""Loading backbone weights in official (Microsoft Swin), timm and mmseg key formats.

Files are read by the one reader, :mod:`mtdense.checkpoint` (``torch.load(weights_only=True)``
for ``.pth``, ``.pt``, ``.bin``, ``.ckpt``; ``safetensors`` for ``.safetensors``); wrappers
``{'state_dict': ...}``, ``{'model': ...}``, ``{'module': ...}`` and the prefixes ``module.`` /
``backbone.`` are removed (a segmentor checkpoint's non-``backbone.`` keys are dropped and
reported). Key formats:

============  ===========================================  ==========================
format        Swin example key                             ViT example key
============  ===========================================  ==========================
official      layers.0.blocks.0.attn.qkv.weight,           (none; use timm)
              layers.0.downsample.reduction.weight
timm          layers.0.blocks.0.attn.qkv.weight,           blocks.0.attn.qkv.weight
              layers.1.downsample.reduction.weight
mmseg         stages.0.blocks.0.attn.w_msa.qkv.weight      layers.0.attn.attn.in_proj_weight
============  ===========================================  ==========================

Official Swin downsamples at the *end* of a stage, timm at the *start* of the
next one; mmseg's ``PatchMerging`` uses ``nn.Unfold`` whose channel order
(c, kh, kw) differs from the official concat order (kw, kh, c), so the merge
reduction weight and norm are permuted (our own converter, written from the
two forward definitions; the round trip is tested numerically against timm).
Conversions go through the official layout; official -> timm uses timm's own
``checkpoint_filter_fn``.

After conversion the state dict must match the backbone exactly, except:
classifier heads and output norms that the wrapped backbone does not have are
dropped, output norms absent from the source format (mmseg ``norm{i}`` when
loading official/timm weights, as mmseg itself does) keep their init, and
computed buffers (``relative_position_index``, ``attn_mask``) are always the
model's own. Relative position bias tables (window size change) and ViT
position embeddings (image size change) are resized with timm's resamplers
and reported. Everything else missing, unexpected or mis-shaped raises
:class:`CheckpointMismatchError` listing the keys.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

from mtdense.checkpoint import CheckpointMismatchError, safe_load, state_dict_from

FORMATS = ('auto', 'official', 'timm', 'mmseg')
_COMPUTED_BUFFERS = ('relative_position_index', 'attn_mask')


# ----------------------------------------------------------------- reading
def read_state_dict(path: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Read a tensor state dict with the one reader (:func:`mtdense.checkpoint.safe_load`);
    unwrap containers and prefixes (see :func:`unwrap_state_dict`)."""
    return unwrap_state_dict(safe_load(path, map_location='cpu'), path)


def unwrap_state_dict(obj, source: str = '<state dict>') -> Tuple[Dict[str, Tensor], List[str]]:
    """Remove ``state_dict``/``model``/``module`` wrappers and ``module.``/``backbone.`` prefixes.

    Returns:
        the backbone state dict and the keys removed because they belong to other parts
        of a whole-model checkpoint (keys without the ``backbone.`` prefix when some have it).
    """
    sd = state_dict_from(obj, source)
    removed: List[str] = []
    if any(k.startswith('backbone.') for k in sd):
        removed = [k for k in sd if not k.startswith('backbone.')]
        sd = OrderedDict(
            (k[len('backbone.'):], v) for k, v in sd.items() if k.startswith('backbone.'))
    return sd, removed


# -------------------------------------------------------------- detection
def detect_format(sd: Dict[str, Tensor]) -> Tuple[str, str]:
    """Return ``(family, format)`` with family 'swin' | 'vit' and format as in FORMATS."""
    keys = list(sd)
    if any(re.match(r'stages\.\d+\.blocks\.\d+\.attn\.w_msa\.', k) for k in keys):
        return 'swin', 'mmseg'
    if any(re.match(r'layers\.\d+\.blocks\.\d+\.', k) for k in keys):
        # official: every stage but the last ends with a PatchMerging (stage 0 has one);
        # timm: stage 0 has none
        if any(k.startswith('layers.0.downsample.') for k in keys):
            return 'swin', 'official'
        return 'swin', 'timm'
    if any(re.match(r'layers\.\d+\.attn\.attn\.in_proj_weight', k) for k in keys):
        return 'vit', 'mmseg'
    if any(re.match(r'blocks\.\d+\.attn\.qkv\.', k) for k in keys):
        return 'vit', 'timm'
    raise CheckpointMismatchError(
        'cannot tell the checkpoint key format (first keys: '
        f'{keys[:6]}); expected official/timm/mmseg Swin or timm/mmseg ViT keys')


# ------------------------------------------------------- Swin conversions
def _merge_official_to_mmseg(v: Tensor) -> Tensor:
    # official channel index (kh + 2*kw) * C + c  ->  mmseg (nn.Unfold) c * 4 + kh * 2 + kw
    if v.dim() == 2:
        out, in4 = v.shape
        return v.reshape(out, 4, in4 // 4)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(out, in4)
    return v.reshape(4, v.shape[0] // 4)[[0, 2, 1, 3], :].transpose(0, 1).reshape(v.shape[0])


def _merge_mmseg_to_official(v: Tensor) -> Tensor:
    if v.dim() == 2:
        out, in4 = v.shape
        return v.reshape(out, in4 // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3], :].reshape(out, in4)
    return v.reshape(v.shape[0] // 4, 4).transpose(0, 1)[[0, 2, 1, 3], :].reshape(v.shape[0])


#: official (microsoft/Swin-Transformer) -> mmseg key parts inside a stage's blocks
_SWIN_BLOCK_PARTS = (('.attn.', '.attn.w_msa.'), ('.mlp.fc1.', '.ffn.layers.0.0.'),
                     ('.mlp.fc2.', '.ffn.layers.1.'))


def _convert_swin_keys(sd: Dict[str, Tensor], to_mmseg: bool) -> Dict[str, Tensor]:
    """The official <-> mmseg Swin key mapping, one table read both ways; patch-merging
    reductions also permute their input channels. Other keys (patch_embed.norm,
    absolute_pos_embed, the final / per-output norms, head) pass unchanged."""
    flip = (lambda pair: pair) if to_mmseg else (lambda pair: pair[::-1])
    stage = flip(('layers.', 'stages.'))
    embed = flip(('patch_embed.proj.', 'patch_embed.projection.'))
    parts = [flip(p) for p in _SWIN_BLOCK_PARTS]
    merge = _merge_official_to_mmseg if to_mmseg else _merge_mmseg_to_official
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith(stage[0]):
            nk = stage[1] + k[len(stage[0]):]
            for old, new in parts:
                nk = nk.replace(old, new, 1)
            if '.downsample.' in nk:
                v = merge(v)
            out[nk] = v
        elif k.startswith(embed[0]):
            out[embed[1] + k[len(embed[0]):]] = v
        else:
            out[k] = v
    return out


def swin_official_to_mmseg(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return _convert_swin_keys(sd, to_mmseg=True)


def swin_mmseg_to_official(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return _convert_swin_keys(sd, to_mmseg=False)


def swin_timm_to_official(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    out = OrderedDict()
    for k, v in sd.items():
        m = re.match(r'layers\.(\d+)\.downsample\.(.*)', k)
        if m:
            out[f'layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}'] = v
        elif k.startswith('head.fc.'):
            out[k.replace('head.fc.', 'head.')] = v
        else:
            out[k] = v
    return out


def swin_official_to_timm(sd: Dict[str, Tensor], model: torch.nn.Module) -> Dict[str, Tensor]:
    from timm.models.swin_transformer import checkpoint_filter_fn
    return OrderedDict(checkpoint_filter_fn(dict(sd), model))


# -------------------------------------------------------- ViT conversions
#: (timm key, mmseg key) templates; ``{i}`` is a block index, a trailing '.' matches a
#: module prefix, anything else the whole key. Both directions come from this table.
_VIT_KEYS = [
    ('blocks.{i}.norm1.', 'layers.{i}.ln1.'),
    ('blocks.{i}.norm2.', 'layers.{i}.ln2.'),
    ('blocks.{i}.attn.qkv.weight', 'layers.{i}.attn.attn.in_proj_weight'),
    ('blocks.{i}.attn.qkv.bias', 'layers.{i}.attn.attn.in_proj_bias'),
    ('blocks.{i}.attn.proj.', 'layers.{i}.attn.attn.out_proj.'),
    ('blocks.{i}.mlp.fc1.', 'layers.{i}.ffn.layers.0.0.'),
    ('blocks.{i}.mlp.fc2.', 'layers.{i}.ffn.layers.1.'),
    ('patch_embed.proj.', 'patch_embed.projection.'),
    ('norm_pre.', 'ln_pre.'),
    ('norm.', 'ln1.'),
]


def _rules(pairs) -> List[Tuple[str, str]]:
    """``(pattern, replacement)`` regexes from ``(source, target)`` key templates."""
    rules = []
    for src, dst in pairs:
        pat = '^' + re.escape(src).replace(re.escape('{i}'), r'(\d+)')
        rules.append((pat if src.endswith('.') else pat + '$', dst.replace('{i}', r'\1')))
    return rules


_VIT_TIMM_TO_MMSEG = _rules(_VIT_KEYS)
_VIT_MMSEG_TO_TIMM = _rules((m, t) for t, m in _VIT_KEYS)


def _rename(sd: Dict[str, Tensor], rules) -> Dict[str, Tensor]:
    out = OrderedDict()
    for k, v in sd.items():
        nk = k
        for pat, rep in rules:
            nk2 = re.sub(pat, rep, nk)
            if nk2 != nk:
                nk = nk2
                break
        out[nk] = v
    return out


def vit_timm_to_mmseg(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return _rename(sd, _VIT_TIMM_TO_MMSEG)


def vit_mmseg_to_timm(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    return _rename(sd, _VIT_MMSEG_TO_TIMM)


def convert_state_dict(sd: Dict[str, Tensor],
                       family: str,
                       src: str,
                       dst: str,
                       model: Optional[torch.nn.Module] = None) -> Dict[str, Tensor]:
    """Convert ``sd`` from format ``src`` to ``dst`` (``model`` is needed for -> timm Swin)."""
    if src == dst:
        return OrderedDict(sd)
    if family == 'swin':
        official = {
            'official': lambda s: s,
            'timm': swin_timm_to_official,
            'mmseg': swin_mmseg_to_official
        }[src](
            sd)
        if dst == 'official':
            return official
        if dst == 'mmseg':
            return swin_official_to_mmseg(official)
        if model is None:
            raise ValueError('converting Swin weights to the timm format needs the timm model')
        return swin_official_to_timm(official, model)
    if family == 'vit':
        if (src, dst) == ('timm', 'mmseg'):
            return vit_timm_to_mmseg(sd)
        if (src, dst) == ('mmseg', 'timm'):
            return vit_mmseg_to_timm(sd)
    raise ValueError(f'no converter for {family} weights from {src!r} to {dst!r}')


# ---------------------------------------------------------------- loading
def _host_format(host) -> Tuple[str, str]:
    name = type(host).__name__
    table = {
        'MMSegSwin': ('swin', 'mmseg'),
        'TimmSwin': ('swin', 'timm'),
        'MMSegViT': ('vit', 'mmseg'),
        'TimmViT': ('vit', 'timm')
    }
    if name not in table:
        raise TypeError(f'no checkpoint format known for host {name}')
    return table[name]


# keys a source format may carry that the wrapped backbone legitimately lacks
_DROPPABLE = {
    'swin':
    [r'^head\.', r'^norm\.', r'^norm\d+\.', r'(^|\.)attn_mask$', r'relative_position_index$'],
    'vit': [r'^head\.', r'^fc_norm\.', r'^norm\.', r'^ln1\.'],
}
# model keys a *different* source format does not provide (kept at their init)
_KEPT_AT_INIT = {
    'swin': [r'^norm\d+\.', r'^norm\.', r'relative_position_index$'],
    'vit': [r'^norm\.', r'^ln1\.'],
}


def _matches(key: str, patterns: List[str]) -> bool:
    return any(re.search(p, key) for p in patterns)


def _resize_if_needed(key: str, v: Tensor, target: Tensor, host) -> Tuple[Tensor, Optional[str]]:
    if v.shape == target.shape:
        return v, None
    if key.endswith('relative_position_bias_table') and v.dim() == 2 and target.dim() == 2 \
            and v.shape[1] == target.shape[1]:
        from timm.layers import resize_rel_pos_bias_table
        side = int(math.isqrt(target.shape[0]))
        win = ((side + 1) // 2, (side + 1) // 2)
        resized = resize_rel_pos_bias_table(v, new_window_size=win,
                                            new_bias_shape=tuple(target.shape))
        return resized, f'{key}: resized {tuple(v.shape)} -> {tuple(target.shape)}'
    if key == 'pos_embed' and v.dim() == 3 and target.dim() == 3 and v.shape[2] == target.shape[2]:
        from timm.layers import resample_abs_pos_embed
        prefix = getattr(host, 'num_prefix_tokens', 1)
        n_new = target.shape[1] - prefix
        grid = getattr(host, 'pos_grid', None)
        new_size = grid if grid is not None else (int(math.isqrt(n_new)), ) * 2
        return resample_abs_pos_embed(v, new_size=list(new_size), num_prefix_tokens=prefix), \
            f'{key}: resampled {tuple(v.shape)} -> {tuple(target.shape)}'
    return v, 'mismatch'


def load_backbone_checkpoint(host, path_or_state, checkpoint_format: str = 'auto') -> dict:
    """Load weights into ``host.backbone``; return a report of what was done.

    Args:
        host: a backbone host (``MMSegSwin``, ``TimmSwin``, ``MMSegViT``, ``TimmViT``).
        path_or_state: file path or an in-memory state dict.
        checkpoint_format: 'auto' | 'official' | 'timm' | 'mmseg'.
    Raises:
        CheckpointMismatchError: missing / unexpected / mis-shaped keys, listed.
    """
    if checkpoint_format not in FORMATS:
        raise ValueError(f'checkpoint_format={checkpoint_format!r} is not one of {FORMATS}')
    source = path_or_state if isinstance(path_or_state, str) else '<state dict>'
    sd, not_backbone = read_state_dict(path_or_state) if isinstance(path_or_state, str) else \
        unwrap_state_dict(path_or_state, source)
    family, dst = _host_format(host)
    detected_family, detected = detect_format(sd)
    if detected_family != family:
        raise CheckpointMismatchError(f'checkpoint {source!r} holds {detected_family} weights '
                                      f'({detected} keys) but the backbone is a {family}')
    src = detected if checkpoint_format == 'auto' else checkpoint_format
    if family == 'vit' and src == 'official':
        raise ValueError('there is no official ViT key format; use timm or mmseg keys')
    sd = convert_state_dict(sd, family, src, dst, model=host.backbone)

    target = host.backbone.state_dict()
    report = dict(
        source=source,
        format=src,
        converted_to=dst,
        not_backbone=not_backbone,
        dropped=[],
        kept_at_init=[],
        computed=[],
        resized=[])
    unexpected, shape_bad, to_load = [], [], OrderedDict()
    for k, v in sd.items():
        if any(k.endswith(b) for b in _COMPUTED_BUFFERS):
            continue  # deterministic buffers: the model's own (they depend on the window size)
        if k not in target:
            if _matches(k, _DROPPABLE[family]):
                report['dropped'].append(k)
            else:
                unexpected.append(k)
            continue
        v2, note = _resize_if_needed(k, v, target[k], host)
        if note == 'mismatch':
            shape_bad.append(f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}')
            continue
        if note:
            report['resized'].append(note)
        to_load[k] = v2.to(target[k].dtype)
    missing = []
    for k in target:
        if k in to_load:
            continue
        if any(k.endswith(b) for b in _COMPUTED_BUFFERS):
            report['computed'].append(k)
        elif src != dst and _matches(k, _KEPT_AT_INIT[family]):
            report['kept_at_init'].append(k)
        else:
            missing.append(k)
    if missing or unexpected or shape_bad:
        lines = [
            f'checkpoint {source!r} ({src} format, converted to {dst}) does not match '
            f'{type(host).__name__}:'
        ]
        if missing:
            lines.append(f'  missing keys ({len(missing)}): {missing}')
        if unexpected:
            lines.append(f'  unexpected keys ({len(unexpected)}): {unexpected}')
        if shape_bad:
            lines.append(f'  shape mismatches ({len(shape_bad)}): {shape_bad}')
        raise CheckpointMismatchError('\n'.join(lines))
    host.backbone.load_state_dict(to_load, strict=False)
    msg = (f'loaded {len(to_load)} tensors from {source} ({src} -> {dst}); ignored '
           f'{len(not_backbone)} non-backbone keys; dropped {report["dropped"]}; kept at init '
           f'{report["kept_at_init"]}; resized {report["resized"]}')
    print_log(msg, logger='current')
    return report
