"""Write panels of dataset samples (image + every task map): ``mtdense browse`` (mtdense/cli/browse_dataset.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.browse_dataset import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.browse_dataset import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
