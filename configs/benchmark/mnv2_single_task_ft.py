# Method benchmark row "single-task FT" of the MobileNetV2: one fully trained MobileNetV2 copy per
# task (the Δm reference of the MobileNetV2 rows). mtdense.benchmark.conv_baselines.TimmCNNBaseline
# in place of the seed methods' per-task streams; the protocol (mnv2_protocol.py) supplies the
# weights, heads, data and schedule.
_base_ = ['../_base_/models/mobilenetv2_modulation.py']
custom_imports = dict(imports=['mtdense.benchmark.conv_baselines'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='TimmCNNBaseline', mode='single_task_ft',
                           backbone=dict(model_name='mobilenetv2_100', pretrained_path=None)))
benchmark = dict(label='single-task FT', protocol='mnv2_protocol.py', role='baseline')
