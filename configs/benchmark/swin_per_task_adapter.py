# Method benchmark row "per-task Adapter": AdaptFormer-style adapters per task, one pass per task.
# The method is what ../_base_/models/swin_t_mmseg_per_task_adapter.py sets (whatever it becomes);
# the protocol (swin_protocol.py) supplies the backbone, heads, data and schedule
# (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_per_task_adapter.py']
benchmark = dict(label='per-task Adapter', protocol='swin_protocol.py', role='method')
