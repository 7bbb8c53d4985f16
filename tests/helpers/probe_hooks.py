"""Hooks the tool tests inject into training subprocesses (``custom_imports``).

Not part of the package: they record what a run did (samples per rank, a parameter
checksum) or end it abruptly, so the tests can check sharding and resuming from outside.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import List, Optional

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook

from mtdense.registry import HOOKS


@HOOKS.register_module()
class RecordTrainSamplesHook(Hook):
    """Write ``work_dir/rank{r}.json``: the ``sample_idx`` of every training sample this
    rank consumed, per iteration, plus the rank, world size and a checksum of the
    trainable parameters at the end of training."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.per_iter: List[List[int]] = []

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        self.per_iter.append([int(s.metainfo['sample_idx']) for s in data_batch['data_samples']])

    def after_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        trainable = [p.detach().double().sum().item()
                     for p in model.parameters() if p.requires_grad]
        with open(osp.join(runner.work_dir, f'rank{get_rank()}.json'), 'w') as f:
            json.dump(dict(rank=get_rank(), world_size=get_world_size(),
                           wrapped=type(runner.model).__name__,
                           samples=self.per_iter, trainable_checksum=trainable), f)


@HOOKS.register_module()
class HardExitAtIterHook(Hook):
    """Terminate the process with ``os._exit`` right after iteration ``iter`` (and after
    the checkpoint hook saved), like a job killed by the scheduler: no cleanup runs."""

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def __init__(self, iter: int, exit_code: int = 17) -> None:
        self.iter = int(iter)
        self.exit_code = int(exit_code)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 >= self.iter:
            # flush the log so the test can show what happened
            for handler in runner.logger.handlers:
                handler.flush()
            os._exit(self.exit_code)
