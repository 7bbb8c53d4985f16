# Decoder-only: frozen backbone, only the task heads train.
_base_ = ['./swin_t_mmseg.py']
model = dict(backbone=dict(peft=dict(type='DecoderOnly')))
