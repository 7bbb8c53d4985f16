# Frozen ImageNet MobileNetV2 (timm mobilenetv2_100) in place of the Swin of swin_t_mmseg.py, one
# light head per task; the conv PETL method is set by the files that inherit this one
# (mobilenetv2_modulation.py, mobilenetv2_depthwise_sharing.py). Weights: see
# mobilenetv2_modulation.py.
_base_ = ['./swin_t_mmseg.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvMultiTaskBackbone',
        backbone=dict(model_name='mobilenetv2_100', pretrained_path=None)))
