"""Test-session settings shared by every test file."""
import os

# One OpenMP thread per process: on small machines torch's intra-op threads, dataloader
# workers and the subprocesses some tests start otherwise oversubscribe the cores and
# spin-wait (measured 10-20x slower on 2 cores). Subprocesses inherit the variable.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))

import pytest  # noqa: E402

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
