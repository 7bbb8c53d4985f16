# Regime study row (docs/regime_study.md): single-task FT whose backbones learn at a tenth of the
# grid's lr while the heads take the grid's lr (the usual fine-tuning recipe, e.g. SegFormer's 10x
# head lr). Everything else is the shipped single-task FT row (../swin_single_task_ft.py).
_base_ = ['../swin_single_task_ft.py']
benchmark = dict(label='single-task FT, backbone lr ×0.1', protocol='../swin_protocol.py',
                 role='method', backbone_lr_mult=0.1)
