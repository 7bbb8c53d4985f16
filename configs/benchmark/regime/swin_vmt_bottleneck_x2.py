# Regime study row (docs/regime_study.md): VMT with bottlenecks twice as wide (1/8 of each stage's
# width, not 1/16). Everything else is the shipped VMT row (../swin_vmt.py) on the Swin protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(bottleneck_ratio=1 / 8)))
benchmark = dict(label='VMT, bottleneck x2', protocol='../swin_protocol.py', role='method')
