"""Method benchmark: every PETL method and baseline on the same upstream backbone.

Entry point: ``tools/benchmark_methods.py`` (``benchmarks/methods.sh``); protocol, presets,
outputs and the JSON schema: ``docs/benchmarks.md``. Modules, one job each:

* :mod:`.presets`  the presets (data, budget, lr grid, seeds, profiler settings);
* :mod:`.compose`  rows (``configs/benchmark/*.py``) and their configs: method config +
  protocol's fixed keys, loading policy, schedule;
* :mod:`.plan`     the jobs, their dependencies, spec hashes and state on disk;
* :mod:`.pool`, :mod:`.worker`, :mod:`.jobs`  two long-lived one-thread workers and what
  they run (train + validation, test, upstream, profile);
* :mod:`.run`      the whole invocation (data, weights, scheduling, results);
* :mod:`.aggregate`, :mod:`.report`, :mod:`.plot`  statistics, tables, the PETL picture;
* :mod:`.estimate` a preset's duration from a finished run's measured job times;
* :mod:`.conv_baselines`, :mod:`.transforms`  the MobileNetV2 baseline backbone and the
  cached loading transform (registered when their configs import them).
"""
