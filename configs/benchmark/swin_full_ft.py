# Method benchmark row "multi-task FT": one shared, fully trained backbone. The method is what
# ../_base_/models/swin_t_mmseg_full_ft.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_full_ft.py']
benchmark = dict(label='multi-task FT', protocol='swin_protocol.py', role='method')
