# Method benchmark row "VMT": VMT-Adapter (shared adapters + per-task knowledge extraction). The
# method is what ../_base_/models/swin_t_mmseg_vmt.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_vmt.py']
benchmark = dict(label='VMT', protocol='swin_protocol.py', role='method')
