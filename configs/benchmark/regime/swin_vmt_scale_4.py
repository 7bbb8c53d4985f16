# Regime study row (docs/regime_study.md): VMT with adapter scale s = 4 (not 1): the adapters'
# output, and the effective learning rate of their up-projection, four times larger. Everything
# else is the shipped VMT row (../swin_vmt.py) on the Swin protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(scale=4.0)))
benchmark = dict(label='VMT, scale 4', protocol='../swin_protocol.py', role='method')
