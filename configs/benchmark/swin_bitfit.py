# Method benchmark row "BitFit": the backbone's bias terms train, shared by all tasks. The method is
# what ../_base_/models/swin_t_mmseg_bitfit.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_bitfit.py']
benchmark = dict(label='BitFit', protocol='swin_protocol.py', role='method')
