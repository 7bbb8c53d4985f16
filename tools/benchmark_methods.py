"""Benchmark every PETL method on one upstream backbone: ``mtdense benchmark``
(mtdense/cli/benchmark_methods.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.benchmark_methods import *  # noqa: F401,F403  (the tool's functions)
from mtdense.cli.benchmark_methods import main

if __name__ == '__main__':
    sys.exit(main())
