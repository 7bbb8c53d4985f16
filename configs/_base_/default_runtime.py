# Runtime shared by all mtdense experiments (mmengine Runner arguments).
default_scope = 'mtdense'
# strict checkpoint loading for load_from / resume (load_strict = False to relax)
runner_type = 'MTDenseRunner'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo automatically when CUDA is unavailable.
    dist_cfg=dict(backend='nccl'),
)

log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

# Keeps checkpoints loadable with torch.load(weights_only=True) (mtdense/engine/checkpoint.py).
custom_hooks = [dict(type='SafeCheckpointHook')]

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='MultiTaskVisualizer', vis_backends=vis_backends, name='visualizer')

randomness = dict(seed=0)
