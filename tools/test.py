"""Evaluate a multi-task checkpoint: per-task table, metrics JSON, optional panels and predictions: ``mtdense test`` (mtdense/cli/test.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.test import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.test import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
