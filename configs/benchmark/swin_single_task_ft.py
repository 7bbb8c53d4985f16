# Method benchmark row "single-task FT": one fully trained backbone copy per task (the Δm reference
# of the Swin rows). The method is what ../_base_/models/swin_t_mmseg_single_task_ft.py sets
# (whatever it becomes); the protocol (swin_protocol.py) supplies the backbone, heads, data and
# schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_single_task_ft.py']
benchmark = dict(label='single-task FT', protocol='swin_protocol.py', role='baseline')
