# Regime study row (docs/regime_study.md): VMT with task modules only at the last blocks of stages
# 3 and 4 (tap_blocks=[-2, -1]: blocks 5 and 7 of the 2/2/2/2 Swin), not at every stage; stages
# 1-2 are shared by all tasks. Everything else is the shipped VMT row (../swin_vmt.py) on the Swin
# protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(tap_blocks=[-2, -1])))
benchmark = dict(label='VMT, deep taps only', protocol='../swin_protocol.py', role='method')
