# BitFit: only the backbone's bias terms train (shared by all tasks).
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='BitFit')))
