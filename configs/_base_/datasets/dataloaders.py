# What the dataset fragments (nyud_mt.py, pascal_context_mt.py, synthetic.py) share: shuffled
# infinite sampling for training, one ordered pass over the val split for validation and testing,
# the multi-task evaluator. Each inherits this file and adds its dataset type, root, tasks and
# pipelines to the loaders' ``dataset`` (and its own batch / worker counts where they differ):
# mmengine merges those dicts into these.
train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(split='train'))
val_dataloader = dict(
    batch_size=8, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='val', test_mode=True))
test_dataloader = val_dataloader
# tasks: those the model predicts (a single-task model is evaluated on its task)
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
