"""Test-session settings and the fixtures shared by the test files (helpers: tests/helpers/)."""
import os
import os.path as osp
from types import SimpleNamespace

# One OpenMP thread per process: on small machines torch's intra-op threads, dataloader
# workers and the subprocesses some tests start otherwise oversubscribe the cores and
# spin-wait (measured 10-20x slower on 2 cores). Subprocesses inherit the variable.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

import pytest  # noqa: E402

# the helpers' asserts report like the tests' own (before anything imports helpers)
pytest.register_assert_rewrite('helpers')

#: fixture trees in the exact layouts of the releases, at their image sizes
#: (PASCAL: varied, long side 500; NYUD: 480 x 640): (layout, images, val share, seed);
#: PASCAL seed 8 puts a person in both val images (human_parts is evaluated)
FIXTURE_TREES = dict(pascal=('pascal-mt', 5, 0.4, 8), nyud=('nyud-mt', 4, 0.5, 7))


@pytest.fixture(scope='session')
def fixture_trees(tmp_path_factory):
    """``{'PascalContextMTDataset': root, 'NYUDv2MTDataset': root, 'SyntheticMTDataset':
    root}``: rendered once per session (a few seconds)."""
    from mtdense.datasets.synthetic import ReleaseLayoutWriter, SyntheticDatasetWriter
    base = tmp_path_factory.mktemp('fixture_trees')
    roots = {}
    for name, (layout, num, val, seed) in FIXTURE_TREES.items():
        root = str(base / layout)
        ReleaseLayoutWriter(root, layout, num, seed=seed, val_fraction=val).run()
        roots[name] = root
    syn = str(base / 'synthetic')
    SyntheticDatasetWriter(syn, 6, 48, 64, seed=4, val_fraction=0.34).run()  # persons in val
    return {'PascalContextMTDataset': roots['pascal'], 'NYUDv2MTDataset': roots['nyud'],
            'SyntheticMTDataset': syn}


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """8 synthetic 48x64 scenes (6 train, 2 val), written in-process (< 1 s)."""
    from mtdense.datasets.synthetic import SyntheticDatasetWriter
    root = str(tmp_path_factory.mktemp('synthetic_tiny'))
    SyntheticDatasetWriter(root, 8, 48, 64, seed=0).run(progress=False)
    return root


@pytest.fixture(scope='session')
def tiny_setup(tmp_path_factory) -> dict:
    """``helpers.tiny_model.make_tiny_setup``: 4 synthetic 48 x 64 scenes, a tiny VMT-Adapter
    Swin config and a checkpoint with renamed classes (read-only; add keys to a copy)."""
    from helpers.tiny_model import make_tiny_setup
    return make_tiny_setup(str(tmp_path_factory.mktemp('tiny_setup')))


@pytest.fixture(scope='session')
def tiny_run(synthetic_root, tmp_path_factory) -> SimpleNamespace:
    """tools/train.py on the tiny config (a subprocess): 8 iterations, checkpoints at 4 and 8;
    reused by the train/test, resume, strict-loading and export tests."""
    from helpers.toolrun import KILL_ITER, PYTHON, TINY_CONFIG, TOTAL_ITERS, data_options, run_tool
    work_dir = str(tmp_path_factory.mktemp('tiny_run'))
    proc = run_tool([PYTHON, 'tools/train.py', TINY_CONFIG, '--work-dir', work_dir,
                     '--cfg-options', *data_options(synthetic_root),
                     f'default_hooks.checkpoint.interval={KILL_ITER}'])
    return SimpleNamespace(work_dir=work_dir, proc=proc, config=TINY_CONFIG,
                           data_root=synthetic_root,
                           ckpt=osp.join(work_dir, f'iter_{TOTAL_ITERS}.pth'),
                           ckpt_mid=osp.join(work_dir, f'iter_{KILL_ITER}.pth'))
