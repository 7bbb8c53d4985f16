# Regime study row (docs/regime_study.md): VMT that also trains the backbone's LayerNorms (weights
# and biases). Everything else is the shipped VMT row (../swin_vmt.py) on the Swin protocol.
_base_ = ['../swin_vmt.py']
model = dict(backbone=dict(peft=dict(train_norms=True)))
benchmark = dict(label='VMT, + norms', protocol='../swin_protocol.py', role='method')
