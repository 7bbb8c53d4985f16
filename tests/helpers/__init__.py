"""Helpers shared by the test files (``from helpers import ...``; tests/ is on ``sys.path``
because tests/conftest.py lives there, and tool subprocesses get it on ``PYTHONPATH``).

* ``fixtures``: tiny dataset trees in the exact layouts of the releases, with the arrays
  written (expected decoded values);
* ``smoke``: a real config shrunk, through the config system, for a one-iteration run;
* ``tiny_model``: a tiny VMT-Adapter Swin config, synthetic data and a checkpoint;
* ``models``: a registered test backbone (``_TestPyramidBackbone``), a tiny saliency Swin;
* ``checkpoints``: checkpoint bytes and a pickle payload that runs code when loaded;
* ``toolrun``: tools/ run as subprocesses on configs/tests/tiny_vmt_synthetic.py;
* ``probe_hooks``, ``crash_probes``: hooks injected into those subprocesses
  (``custom_imports``).

Paths come from this file, never from the working directory. Session fixtures are in
tests/conftest.py.
"""
from pathlib import Path

#: the repository root (the checkout the tests belong to)
ROOT = Path(__file__).resolve().parents[2]
