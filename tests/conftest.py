"""Test-session settings shared by every test file."""
import os

# One OpenMP thread per process: on small machines torch's intra-op threads, dataloader
# workers and the subprocesses some tests start otherwise oversubscribe the cores and
# spin-wait (measured 10-20x slower on 2 cores). Subprocesses inherit the variable.
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402

torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
