# Regime study row (docs/regime_study.md): the shared adapters alone, without task modules (KEM):
# one adapted stream for all tasks. Everything else is the shipped VMT row (../swin_vmt.py) on the
# Swin protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(kem='none')))
benchmark = dict(label='VMT, no KEM', protocol='../swin_protocol.py', role='method')
