"""Compare methods' metrics JSONs with Δm against a baseline run: ``mtdense demo-report`` (mtdense/cli/demo_report.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.demo_report import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.demo_report import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
