# Method benchmark row "depthwise sharing": shared pointwise convs, per-task depthwise banks with
# the soft-sharing gate. The method is what ../_base_/models/mobilenetv2_depthwise_sharing.py sets
# (whatever it becomes); the protocol (mnv2_protocol.py) supplies the backbone, heads, data and
# schedule (mtdense.benchmark.compose).
_base_ = ['../_base_/models/mobilenetv2_depthwise_sharing.py']
benchmark = dict(label='depthwise sharing', protocol='mnv2_protocol.py', role='method')
