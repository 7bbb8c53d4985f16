# Single-task full fine-tuning: one trainable backbone copy per task.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='SingleTaskFineTune')))
