"""Export the trained (non-frozen) state of a checkpoint: ``mtdense export-peft`` (mtdense/cli/export_peft.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.export_peft import *  # noqa: F401,F403  (the tool's functions, for scripts and tests)
from mtdense.cli.export_peft import main

if __name__ == '__main__':
    code = main()
    sys.exit(code if isinstance(code, int) else 0)
