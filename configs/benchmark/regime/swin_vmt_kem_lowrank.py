# Regime study row (docs/regime_study.md): VMT whose task modules (KEM) are rank-4 maps (not a
# scale and shift). Everything else is the shipped VMT row (../swin_vmt.py) on the Swin protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(kem='lowrank', kem_rank=4)))
benchmark = dict(label='VMT, low-rank KEM', protocol='../swin_protocol.py', role='method')
