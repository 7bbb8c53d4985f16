"""Count the parameters of a multi-task model built from a config: ``mtdense analyze-params`` (mtdense/cli/analyze_params.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.analyze_params import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.analyze_params import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
