# The MTLoRA schedule applied to NYUD-v2: 300 epochs of the 795 training images at total batch
# 32 (24 iterations per epoch) = 7,200 iterations, 20 warm-up epochs (480 iterations).
_base_ = ['./mtlora_optim.py']
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=480),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=480, end=7200, eta_min=5e-6 * 32 / 512),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=7200, val_interval=7200)
