# Method benchmark row "decoder-only": frozen backbone, only the heads train. The method is what
# ../_base_/models/swin_t_mmseg_decoder_only.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_decoder_only.py']
benchmark = dict(label='decoder-only', protocol='swin_protocol.py', role='method')
