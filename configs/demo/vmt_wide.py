# Demo: VMTAdapter with a wider shared bottleneck, r = d / 2 per stage (16/32/64/128 on the demo's
# embed-32 Swin). The default d / 16 (the paper's ~1% budget on Swin-T) leaves this tiny backbone
# ranks of 2/4/8/16.
_base_ = ['./vmt.py']
model = dict(backbone=dict(peft=dict(bottleneck_ratio=0.5)))
