# Regime study row (docs/regime_study.md): VMT whose adapters (everything trainable under
# model.backbone) learn at 3x the grid's lr while the heads take the grid's lr. Everything else is
# the shipped VMT row (../swin_vmt.py).
_base_ = ['../swin_vmt.py']
benchmark = dict(label='VMT, adapter lr ×3', protocol='../swin_protocol.py', role='method',
                 backbone_lr_mult=3.0)
