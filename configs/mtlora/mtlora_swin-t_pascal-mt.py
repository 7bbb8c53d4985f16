# MTLoRA (shared LoRA on every block + task LoRA at the last block of each stage); frozen ImageNet Swin-T, PASCAL-Context MT.
_base_ = ['../_base_/experiments/swin-t_pascal-mt.py']
model = dict(backbone=dict(peft=dict(type='MTLoRA')))
