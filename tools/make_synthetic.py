"""Generate the procedural synthetic multi-task dataset: ``mtdense make-synthetic`` (mtdense/cli/make_synthetic.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.make_synthetic import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.make_synthetic import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
