"""Killed-and-resumed training reaches exactly the weights of an uninterrupted run.

The reference is the shared 8-iteration run (``tiny_run``). Here the same config is
trained in a process that dies with ``os._exit`` right after the iteration-4
checkpoint (no cleanup, like a job killed by the scheduler), then ``tools/train.py
--resume`` continues it to iteration 8. Same seed, one thread, ``num_workers=0``;
the tiny config has stochastic depth on, so the torch RNG state must be resumed too
(SafeCheckpointHook) -- mmengine alone re-seeds and replays only the data.
"""
import os.path as osp
from types import SimpleNamespace

import torch

from mtdense.engine import safe_load
from mtdense.engine.hooks.safe_checkpoint_hook import SafeCheckpointHook
from helpers.toolrun import (KILL_ITER, PYTHON, TINY_CONFIG, TOTAL_ITERS, assert_nested_equal,
                             data_options, derived_config, run_tool, train_log)


def test_killed_then_resumed_equals_uninterrupted(tiny_run, tmp_path):
    work_dir = str(tmp_path / 'interrupted')
    opts = ['--cfg-options', *data_options(tiny_run.data_root),
            f'default_hooks.checkpoint.interval={KILL_ITER}']
    kill_cfg = derived_config(str(tmp_path / 'kill_at_4.py'),
                              [f"dict(type='HardExitAtIterHook', iter={KILL_ITER}, exit_code=17)"])
    run_tool([PYTHON, 'tools/train.py', kill_cfg, '--work-dir', work_dir, *opts], expect_rc=17)
    assert osp.isfile(osp.join(work_dir, f'iter_{KILL_ITER}.pth'))
    assert not osp.exists(osp.join(work_dir, f'iter_{TOTAL_ITERS}.pth')), 'the run was not cut'

    # Resume with the plain config (the kill hook is not part of the experiment).
    run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume', *opts])
    log = train_log(work_dir)
    assert f'resumed epoch: 0, iter: {KILL_ITER}' in log
    assert f'Iter(train) [{KILL_ITER + 1}/{TOTAL_ITERS}]' in log

    ref = safe_load(tiny_run.ckpt)
    res = safe_load(osp.join(work_dir, f'iter_{TOTAL_ITERS}.pth'))
    assert ref['meta']['iter'] == res['meta']['iter'] == TOTAL_ITERS
    # Exact equality: every parameter and buffer, the optimizer state (AdamW moments,
    # step counts) and the LR scheduler states.
    assert_nested_equal(ref['state_dict'], res['state_dict'], 'state_dict')
    assert_nested_equal(ref['optimizer'], res['optimizer'], 'optimizer')
    assert_nested_equal(ref['param_schedulers'], res['param_schedulers'], 'param_schedulers')
    # guard against a vacuous pass: training did change the trainable state after iter 4
    mid = safe_load(tiny_run.ckpt_mid)['state_dict']
    assert any(not torch.equal(mid[k], ref['state_dict'][k]) for k in mid if k.startswith('heads.'))


def test_checkpoints_load_weights_only_with_rng_state(tiny_run):
    path = tiny_run.ckpt_mid
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    ckpt = torch.load(path, weights_only=True)
    rng = ckpt['mtdense_rng_state']
    assert rng['iter'] == KILL_ITER and rng['cpu'].dtype == torch.uint8
    # message hub history buffers are stored as plain tensors/dicts, rebuilt on load
    assert 'log_scalars' in ckpt['message_hub']


def _fake_runner(iter_: int, diff_rank_seed: bool = False):
    return SimpleNamespace(iter=iter_, cfg=dict(randomness=dict(seed=0,
                                                                diff_rank_seed=diff_rank_seed)))


def _saved_checkpoint(hook: SafeCheckpointHook, iter_: int, tmp_path) -> dict:
    ckpt = {'meta': {'iter': iter_}, 'state_dict': {}}
    hook.before_save_checkpoint(_fake_runner(iter_ - 1), ckpt)
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    return safe_load(path)


def test_rng_state_restored_only_when_resuming_at_that_iteration(tmp_path):
    hook = SafeCheckpointHook()
    torch.manual_seed(123)
    loaded = _saved_checkpoint(hook, 5, tmp_path)
    expected = torch.rand(4)  # what the uninterrupted run draws next

    torch.manual_seed(7)  # a resumed process: different state after re-seeding and replay
    hook.after_load_checkpoint(_fake_runner(5), loaded)
    hook.before_train_iter(_fake_runner(5), batch_idx=5)
    assert torch.equal(torch.rand(4), expected)

    torch.manual_seed(7)
    untouched = torch.rand(4)  # what a process seeded with 7 draws if nothing is restored
    # load_from (fine-tuning from the weights): training starts at 0, state untouched;
    # ranks seeded differently: rank 0's saved stream must not be imposed on all ranks
    for runner in (_fake_runner(0), _fake_runner(5, diff_rank_seed=True)):
        torch.manual_seed(123)
        loaded = _saved_checkpoint(hook, 5, tmp_path)
        torch.manual_seed(7)
        hook.after_load_checkpoint(runner, loaded)
        hook.before_train_iter(runner, batch_idx=runner.iter)
        assert torch.equal(torch.rand(4), untouched)


def test_rng_state_can_be_disabled(tmp_path):
    hook = SafeCheckpointHook(save_rng_state=False)
    ckpt = {'meta': {'iter': 3}}
    hook.before_save_checkpoint(_fake_runner(2), ckpt)
    assert 'mtdense_rng_state' not in ckpt
