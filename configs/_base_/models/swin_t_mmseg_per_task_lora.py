# Per-task LoRA, one backbone pass per task.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='PerTaskLoRA')))
