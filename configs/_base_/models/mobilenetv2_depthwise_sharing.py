# Depthwise sharing with the soft-sharing gate on a frozen ImageNet MobileNetV2: shared
# pointwise convs, per-task depthwise banks and BN (see mobilenetv2_modulation.py for weights).
_base_ = ['./mobilenetv2.py']
model = dict(backbone=dict(method=dict(type='DepthwiseSharing', gate=True, norm='task')))
