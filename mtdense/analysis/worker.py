"""Worker process of the task-scaling profiler (one fresh process per job).

Usage (internal): ``python -m mtdense.analysis.worker JOB.json RECORDS.json``;
``JOB.json`` is a job dict of :func:`mtdense.analysis.profiler.run_job`.
"""
from __future__ import annotations

import json
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print('usage: python -m mtdense.analysis.worker JOB.json RECORDS.json', file=sys.stderr)
        return 2
    import mtdense  # noqa: F401  (mmcv.ops stand-in first)
    from mtdense.analysis.profiler import run_job
    with open(argv[0]) as f:
        job = json.load(f)
    records = run_job(job)
    with open(argv[1], 'w') as f:
        json.dump(records, f)
    return 0


if __name__ == '__main__':
    sys.exit(main())
