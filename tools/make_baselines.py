"""Turn single-task runs into the baselines JSON that Δm reads: ``mtdense make-baselines`` (mtdense/cli/make_baselines.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.make_baselines import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.make_baselines import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
