# Modulation Adapters on a frozen ImageNet MobileNetV2 (timm mobilenetv2_100), one light head per
# task. Weights: bash tools/install_mobilenet_weights.sh, then tools/convert_mobilenetv2.py
# (set model.backbone.backbone.pretrained_path; without it the backbone is randomly initialised).
_base_ = ['./mobilenetv2.py']
model = dict(backbone=dict(method=dict(type='ModulationAdapter', rank=4, norm='task')))
