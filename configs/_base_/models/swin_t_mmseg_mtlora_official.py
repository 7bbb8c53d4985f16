# The whole official MTLoRA model (scale-lab/MTLoRA, configs/mtlora/tiny_448/
# mtlora_tiny_448_r64_scale4_pertask.yaml with its defaults): the MTLoRA backbone of
# swin_t_mmseg_mtlora.py, stochastic depth 0.2, and per task the official decoder: a 1x1
# "downsampler" to 18/36/72/144 channels and an HRNet-style head (MTLoRAHRNetHead), whose
# output the model resizes to the input. Official protocol: 448 x 448 crops, PASCAL-Context
# tasks semseg (21 classes), normals, saliency, human_parts; loss weights 1/10/5/2 (the
# mtdense defaults). Measured counts: docs/methods/mtlora.md.
_base_ = ['./swin_t_mmseg_mtlora.py']
model = dict(
    backbone=dict(backbone=dict(drop_path_rate=0.2)),
    heads=dict(_delete_=True, type='MTLoRAHRNetHead', channels=(18, 36, 72, 144)))
