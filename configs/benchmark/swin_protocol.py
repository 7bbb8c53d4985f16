# Protocol of the Swin rows of the method benchmark (tools/benchmark_methods.py,
# docs/benchmarks.md): the demo's small Swin (embed 32, depths 2/2/2/2, window 6), light heads of 32
# channels, the synthetic data pipeline, AdamW with linear warm-up + cosine, batch 8
# (configs/demo/demo_base.py).
#
# A method row (swin_<method>.py) inherits its method's model config; mtdense.benchmark.compose puts
# this protocol's fixed model keys (backbone architecture and checkpoint, heads, tasks, classes,
# preprocessing) over it and uses everything else of this file. The tool then writes data roots, the
# upstream checkpoint, learning rate, seed and schedule length into each run's config
# (runs/<run>/config.py, runnable with tools/train.py).
_base_ = ['../demo/demo_base.py']
model = dict(backbone=dict(checkpoint=None, checkpoint_format='mmseg'))

# What the tool provides for this family: the upstream backbone (configs/demo/upstream_full_ft.py
# trained on the benchmark's training split, then tools/extract_backbone.py), written to this key.
benchmark_protocol = dict(weights='upstream', upstream_config='../demo/upstream_full_ft.py',
                          weights_key='model.backbone.checkpoint')
