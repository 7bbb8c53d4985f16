"""Every task's random_target (the profiler's fake training targets) is a valid packed
ground truth: the layout and dtype of to_tensor, no invalid pixels, labels in range."""
import numpy as np
import pytest
import torch

from mtdense.tasks import get_task, registered_tasks


@pytest.mark.parametrize('name', registered_tasks())
def test_random_target_is_a_valid_packed_ground_truth(name):
    task = get_task(name)
    g = torch.Generator().manual_seed(0)
    gt = task.random_target(5, 7, g, num_classes=4)
    channels = task.gt_channels or 1
    assert gt.shape == (channels, 5, 7)
    arr = np.zeros((5, 7) if task.gt_channels is None else (5, 7, channels), task.gt_dtype)
    assert gt.dtype == task.to_tensor(arr).dtype
    if task.gt_dtype == np.uint8:  # labels: classes, or {0, 1} without classes
        high = 4 if task.has_classes and task.num_channels is None else (
            task.num_channels if task.has_classes else 2)
        assert int(gt.min()) >= 0 and int(gt.max()) < high
    else:
        assert torch.isfinite(gt).all()
        valid = gt.abs().sum(0) > 0  # 0 / the zero vector is invalid
        assert valid.all()
    assert torch.equal(gt, task.random_target(5, 7, torch.Generator().manual_seed(0), 4))
