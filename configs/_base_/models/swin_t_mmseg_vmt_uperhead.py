# VMT-Adapter with mmseg UPerHead decoders (through MMSegHeadAdapter) instead of the light heads.
_base_ = ['./swin_t_mmseg_vmt.py']
model = dict(
    heads=dict(
        _delete_=True,
        type='MMSegHeadAdapter',
        head=dict(type='UPerHead', channels=128, pool_scales=(1, 2, 3, 6), dropout_ratio=0.1,
                  norm_cfg=dict(type='BN', requires_grad=True), align_corners=False)))
