# decoder-only: frozen backbone, only the task heads train; frozen ImageNet Swin-T, PASCAL-Context MT.
_base_ = ['../_base_/experiments/swin-t_pascal-mt.py']
model = dict(backbone=dict(peft=dict(type='DecoderOnly')))
