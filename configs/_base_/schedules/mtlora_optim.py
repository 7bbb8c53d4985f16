# Optimiser of the MTLoRA protocol (scale-lab/MTLoRA main.py / optimizer.py): AdamW, base
# lr 5e-4 scaled linearly by total batch / 512 (3.125e-5 at the protocol's total batch 32),
# weight decay 0.05 except on 1-D parameters (norms, biases, scales), gradient-norm clip 5.
# The schedule is for a total batch of 32 (batch_size x number of processes); tools/train.py
# refuses another total unless --auto-scale-lr (mmengine scales the lr linearly, like the
# MTLoRA rule; the iteration count stays).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4 * 32 / 512, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0))
auto_scale_lr = dict(enable=False, base_batch_size=32)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
