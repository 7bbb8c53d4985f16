# MTLoRA-style shared + task-specific low-rank adaptation.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='MTLoRA')))
