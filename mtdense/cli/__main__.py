"""``python -m mtdense.cli``: the ``mtdense`` command without the console script."""
import sys

from mtdense.cli import main

sys.exit(main())
