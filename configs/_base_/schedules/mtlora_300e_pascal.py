# MTLoRA protocol on PASCAL-Context: 300 epochs of the 4998 training images at total batch 32
# (156 iterations per epoch, last partial batch dropped) = 46,800 iterations; linear warm-up
# over the first 20 epochs (3,120 iterations) from lr / 1000 (their warmup_lr 5e-7 x 32/512),
# then cosine to lr / 100 (their min_lr 5e-6 x 32/512); one validation at the end.
_base_ = ['./mtlora_optim.py']
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=3120),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=3120, end=46800,
         eta_min=5e-6 * 32 / 512),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=46800, val_interval=46800)
