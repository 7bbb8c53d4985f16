# Method benchmark row "MTLoRA": shared + task-specific low-rank adaptation. The method is what
# ../_base_/models/swin_t_mmseg_mtlora.py sets (whatever it becomes); the protocol
# (swin_protocol.py) supplies the backbone, heads, data and schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_mtlora.py']
benchmark = dict(label='MTLoRA', protocol='swin_protocol.py', role='method')
