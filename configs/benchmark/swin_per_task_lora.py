# Method benchmark row "per-task LoRA": LoRA per task on qkv/proj/fc1/fc2, one pass per task. The
# method is what ../_base_/models/swin_t_mmseg_per_task_lora.py sets (whatever it becomes); the
# protocol (swin_protocol.py) supplies the backbone, heads, data and schedule
# (mtdense.benchmark.compose).
_base_ = ['../_base_/models/swin_t_mmseg_per_task_lora.py']
benchmark = dict(label='per-task LoRA', protocol='swin_protocol.py', role='method')
