# Depthwise sharing with the soft-sharing gate on a frozen ImageNet MobileNetV2: shared
# pointwise convs, per-task depthwise banks and BN (see mobilenetv2_modulation.py for weights).
_base_ = ['./swin_t_mmseg.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvMultiTaskBackbone',
        backbone=dict(model_name='mobilenetv2_100', pretrained_path=None),
        method=dict(type='DepthwiseSharing', gate=True, norm='task')))
