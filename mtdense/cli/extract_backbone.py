"""Extract the (wrapped) backbone weights of a trained mtdense checkpoint.

The result holds the wrapped mmseg/timm backbone's own keys (e.g. mmseg Swin's
``stages.0.blocks.0.attn...``), so it loads unchanged as an ``AdaptedBackbone``
``checkpoint`` — this is how an upstream multi-task model becomes the frozen,
pretrained backbone of a PETL run.

    python tools/extract_backbone.py CKPT --out backbone.pth [--prefix backbone.host.backbone.]
"""
import argparse
from typing import List, Optional
import os
import os.path as osp

import torch

from mtdense.checkpoint import safe_load, state_dict_from


def extract(ckpt: dict, prefix: str) -> dict:
    sd = state_dict_from(ckpt, 'checkpoint')
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not out:
        roots = sorted({k.split('.')[0] for k in sd})
        raise KeyError(f'no key starts with {prefix!r}; top-level prefixes are {roots}')
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='mtdense checkpoint (.pth)')
    parser.add_argument('--out', required=True, help='output .pth (tensors only)')
    parser.add_argument('--prefix', default='backbone.host.backbone.',
                        help='state-dict prefix of the wrapped backbone')
    args = parser.parse_args(argv)
    sd = extract(safe_load(args.checkpoint), args.prefix)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save({'state_dict': sd}, args.out)
    n = sum(v.numel() for v in sd.values())
    print(f'wrote {len(sd)} tensors ({n / 1e6:.2f} M values) to {args.out}')
