# Multi-task full fine-tuning: the whole backbone trains, shared by all tasks.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='FullFineTune')))
