# VMT-Adapter: shared parallel adapters + per-task knowledge extraction modules (~1% of Swin-T).
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='VMTAdapter')))
