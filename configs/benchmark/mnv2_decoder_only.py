# Method benchmark row "decoder-only" of the MobileNetV2: frozen ImageNet MobileNetV2 (BN on its
# running statistics), only the heads train. mtdense.benchmark.conv_baselines.TimmCNNBaseline in
# place of the seed methods' per-task streams; the protocol (mnv2_protocol.py) supplies the weights,
# heads, data and schedule.
_base_ = ['../_base_/models/mobilenetv2_modulation.py']
custom_imports = dict(imports=['mtdense.benchmark.conv_baselines'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='TimmCNNBaseline', mode='decoder_only',
                           backbone=dict(model_name='mobilenetv2_100', pretrained_path=None)))
benchmark = dict(label='decoder-only', protocol='mnv2_protocol.py', role='method')
