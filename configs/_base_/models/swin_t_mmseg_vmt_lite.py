# VMT-Adapter-Lite: tied down/up projections (~0.36% of Swin-T).
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='VMTAdapterLite')))
