"""Speed, memory, FLOPs and parameters versus the number of tasks: ``mtdense profile``
(mtdense/cli/profile_tasks.py).

This script is a thin wrapper kept for mmseg's ``python tools/<tool>.py`` convention.
"""
import sys

from mtdense.cli.profile_tasks import *  # noqa: F401,F403  (the tool's functions)
from mtdense.cli.profile_tasks import main

if __name__ == '__main__':
    sys.exit(main())
