"""tools/dist_train.sh: two CPU processes (torchrun + gloo) really share the work.

Each rank records the ``sample_idx`` of every training sample it consumed and a
checksum of its trainable parameters (helpers.probe_hooks.RecordTrainSamplesHook). mmengine's
InfiniteSampler gives rank r the positions r, r + 2, ... of one seeded stream of
dataset permutations, so interleaving the two ranks' samples must rebuild whole
permutations; DDP averages gradients, so both ranks must end with the same weights
although they saw different samples.
"""
import json
import os.path as osp
import sys

from helpers.toolrun import data_options, derived_config, free_port, run_tool, train_log

ITERS = 3
BATCH = 2  # tiny config's train batch size per rank
WORLD = 2


def test_dist_train_two_cpu_ranks_shard_the_data(synthetic_root, tmp_path):
    work_dir = tmp_path / 'dist'
    cfg = derived_config(str(tmp_path / 'record.py'), ["dict(type='RecordTrainSamplesHook')"])
    with open(osp.join(synthetic_root, 'gt_sets', 'train.txt')) as f:
        num_train = len(f.read().split())
    run_tool(['bash', 'tools/dist_train.sh', cfg, str(WORLD), '--work-dir', work_dir,
              '--cfg-options', *data_options(synthetic_root), f'train_cfg.max_iters={ITERS}',
              f'train_cfg.val_interval={ITERS}'],
             env=dict(PORT=str(free_port()), PYTHON=sys.executable),
             timeout=400)

    records = []
    for rank in range(WORLD):
        path = work_dir / f'rank{rank}.json'
        assert path.is_file(), f'rank {rank} did not finish training (no {path.name})'
        rec = json.loads(path.read_text())
        assert rec['rank'] == rank and rec['world_size'] == WORLD
        assert rec['wrapped'] == 'MMDistributedDataParallel'
        assert len(rec['samples']) == ITERS and all(len(b) == BATCH for b in rec['samples'])
        records.append(rec)

    flat = [[i for batch in rec['samples'] for i in batch] for rec in records]
    # the two ranks' shares of the first pass over the data are disjoint
    first = [set(f[:num_train // WORLD]) for f in flat]
    assert not first[0] & first[1], f'ranks saw the same samples: {flat}'
    # interleaved (rank 0, rank 1, rank 0, ...), they form whole permutations of the dataset
    stream = [flat[r][k] for k in range(len(flat[0])) for r in range(WORLD)]
    assert len(stream) == ITERS * BATCH * WORLD
    for start in range(0, len(stream) - num_train + 1, num_train):
        assert sorted(stream[start:start + num_train]) == list(range(num_train)), stream
    # gradients were synchronised: identical trainable weights after different data
    assert records[0]['trainable_checksum'] == records[1]['trainable_checksum']

    # rank 0 wrote the checkpoint and the distributed end-of-training validation ran
    assert (work_dir / f'iter_{ITERS}.pth').is_file()
    log = train_log(str(work_dir))
    assert 'Distributed training: True' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log  # switched by mtdense.engine.launch on CPU
    assert 'Iter(val)' in log and 'semseg/mIoU' in log
