"""The PETL core (mtdense/models/petl): one stacking convention, slots without their method,
one-way imports (checked for the whole package in tests/test_package_structure.py)."""

import pytest
import torch

from mtdense.models.backbones.conv_multitask import ConvMultiTaskBackbone
from mtdense.models.petl import (ConvSlot, NormSlot, TaskStreams, channels_to_tasks,
                                 repeat_tasks, tasks_to_channels, unstack_tasks)


def test_stacking_is_task_major_and_channel_stack_round_trips():
    t, b, c = 3, 2, 4
    x = torch.randn(b, c, 5, 5)
    stack = repeat_tasks(x, t) + torch.arange(t).repeat_interleave(b).view(-1, 1, 1, 1)
    for i, part in enumerate(unstack_tasks(stack, t)):  # row t*B + b is image b of task t
        assert torch.equal(part, x + i)
    ch = tasks_to_channels(stack, t)
    assert ch.shape == (b, t * c, 5, 5)
    for i in range(t):
        assert torch.equal(ch[:, i * c:(i + 1) * c], x + i)
    assert torch.equal(channels_to_tasks(ch, t), stack)


def test_task_streams_select_and_restore():
    streams = TaskStreams(3)
    with streams.use([2, 0]):
        assert streams.active == [2, 0]
        assert streams.split(torch.zeros(4, 5, 2, 2), 5, 'here') == (2, 2)
        with pytest.raises(ValueError, match=r'here: expected \(2\*B, 6, H, W\)'):
            streams.split(torch.zeros(4, 5, 2, 2), 6, 'here')
    assert streams.active == [0, 1, 2]
    for bad in ([], [3], [1, 1]):
        with pytest.raises(ValueError, match='invalid task indices'):
            with streams.use(bad):
                pass


@pytest.mark.parametrize('method', [dict(type='ModulationAdapter', rank=2),
                                    dict(type='DepthwiseSharing', gate=True)])
def test_conv_slots_hold_the_backbone_streams_not_the_method(method):
    torch.set_num_threads(1)
    bb = ConvMultiTaskBackbone(dict(model_name='mobilenetv2_050'), method, ['a', 'b'])
    slots = [m for m in bb.model.modules() if isinstance(m, (ConvSlot, NormSlot))]
    assert slots
    for slot in slots:
        assert slot.__dict__['_streams'] is bb.streams
        assert all(v is not bb.method for v in vars(slot).values())
        kernel = slot.__dict__['_kernel']
        assert kernel is not bb.method
        assert all(v is not bb.method for v in vars(kernel).values()) if kernel is not None \
            and not isinstance(kernel, torch.nn.Module) else True
    # the kernels' parameters are the method's (saved once, under method.*)
    keys = list(bb.state_dict())
    assert not any(k.startswith('model.') and ('.banks.' in k or '.gates.' in k) for k in keys)
    assert any(k.startswith('method.banks.') for k in keys)
