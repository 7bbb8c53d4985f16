"""Export only the trained (PEFT) state of a checkpoint, with its backbone identity.

    python tools/export_peft.py CONFIG CHECKPOINT --out peft.safetensors [--cfg-options k=v ...]

The model is built from CONFIG, the checkpoint's full ``state_dict`` is loaded into it
(strictly, weights-only), and every state entry except the frozen parameters is written
to ``--out`` (``.safetensors`` or ``.pth``) together with the backbone config and a
fingerprint (names, shapes, SHA-256) of the frozen backbone. Restore with
``mtdense.engine.peft_export.load_peft(model, path)`` on a model built from the same
config with the same pretrained backbone.
"""
from __future__ import annotations

import argparse
import copy
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='training checkpoint (loaded with weights_only=True)')
    parser.add_argument('--out', required=True,
                        help='output file: .safetensors (recommended) or .pth')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return parser.parse_args(argv)


def _backbone_cfg_without_paths(model_cfg: dict) -> Optional[dict]:
    """The backbone config with machine-specific checkpoint paths removed."""
    bb = model_cfg.get('backbone')
    if bb is None:
        return None
    bb = copy.deepcopy(dict(bb))
    bb.pop('checkpoint', None)
    return bb


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')

    from mtdense.engine.checkpoint import load_model_state, model_state_from_checkpoint, safe_load
    from mtdense.engine.peft_export import export_peft
    from mtdense.registry import MODELS
    from mtdense.utils import register_all_modules

    register_all_modules()
    from mtdense.utils.config_names import resolve_config
    cfg = Config.fromfile(resolve_config(args.config))  # a file or a zoo name
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    backbone_cfg = _backbone_cfg_without_paths(model_cfg)
    source_backbone_ckpt = (model_cfg.get('backbone') or {}).get('checkpoint')
    # The frozen weights come from CHECKPOINT itself; do not require the pretrained file.
    if isinstance(model_cfg.get('backbone'), dict) and 'checkpoint' in model_cfg['backbone']:
        model_cfg['backbone']['checkpoint'] = None
    model = MODELS.build(model_cfg)

    ckpt = safe_load(args.checkpoint)
    state = model_state_from_checkpoint(ckpt, args.checkpoint)
    load_model_state(model, state, f'{args.checkpoint} (config {args.config})', strict=True)
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    summary = export_peft(model, args.out, backbone_cfg=backbone_cfg, extra_metadata=dict(
        config=osp.basename(args.config), source_checkpoint=osp.basename(args.checkpoint),
        iter=meta.get('iter') if isinstance(meta, dict) else None,
        pretrained_backbone_checkpoint=source_backbone_ckpt))

    total = sum(v.numel() for v in model.state_dict().values())
    out_size, ckpt_size = os.path.getsize(args.out), os.path.getsize(args.checkpoint)
    print(f'exported {summary["num_tensors"]} tensors, {summary["numel"]:,} values '
          f'({100.0 * summary["numel"] / max(total, 1):.2f}% of the model state) to {args.out}')
    print(f'file size {out_size / 1024:.1f} KiB vs checkpoint {ckpt_size / 1024:.1f} KiB '
          f'({100.0 * out_size / max(ckpt_size, 1):.1f}%)')
    print(f'frozen backbone: {summary["frozen_numel"]:,} values, '
          f'sha256 {summary["frozen_sha256"]}')
    return 0
