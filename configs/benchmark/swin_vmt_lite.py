# Method benchmark row "VMT-Lite": VMT-Adapter-Lite (tied projections). The method is what
# ../_base_/models/swin_t_mmseg_vmt_lite.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_vmt_lite.py']
benchmark = dict(label='VMT-Lite', protocol='swin_protocol.py', role='method')
