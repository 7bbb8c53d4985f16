# PASCAL-Context multi-task with the fifth task, edge detection (ASTMT's 5-task setting):
# pascal_context_mt.py plus edges computed from pascal-context/trainval/<id>.mat LabelMap
# (thin(|Laplacian| > 0)); evaluated with odsF / oisF / AP within 0.0075 x the diagonal.
# No published Swin-T single-task rows cover the edge task, so there is no default Δm
# baseline: make one from your single-task runs with tools/make_baselines.py and pass it
# with tools/test.py --baselines.
_base_ = ['./pascal_context_mt.py']
tasks = ['semseg', 'human_parts', 'saliency', 'normals', 'edge']
train_dataloader = dict(dataset=dict(tasks=tasks))
val_dataloader = dict(dataset=dict(tasks=tasks))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric', baselines=None)
test_evaluator = val_evaluator
