# Method benchmark row "Modulation Adapters": per-task low-rank modulation of every conv (rank 4,
# task BN). The method is what ../_base_/models/mobilenetv2_modulation.py sets (whatever it
# becomes); the protocol (mnv2_protocol.py) supplies the backbone, heads, data and schedule
# (mtdense.benchmark.compose).
_base_ = ['../_base_/models/mobilenetv2_modulation.py']
benchmark = dict(label='Modulation Adapters', protocol='mnv2_protocol.py', role='method')
