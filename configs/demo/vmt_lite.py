# Demo: adapt the frozen upstream backbone (work_dirs/demo/upstream_backbone.pth, written by
# tools/run_demo.sh) to all five synthetic tasks with VMTAdapterLite.
_base_ = ['./demo_base.py']
model = dict(backbone=dict(peft=dict(type='VMTAdapterLite'),
                           checkpoint='work_dirs/demo/upstream_backbone.pth',
                           checkpoint_format='mmseg'))
