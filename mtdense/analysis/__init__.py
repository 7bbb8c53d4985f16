"""Cost analysis: FLOPs, parameters, latency, throughput and memory versus the number of tasks.

Entry point for users: ``mtdense profile`` (``tools/profile_tasks.py``) (docs/profiling.md); library use::

    from mtdense.analysis import ProfileSettings, profile
    report = profile(ProfileSettings(configs=[('VMT', path)], num_tasks=[1, 4], img_size=224,
                                     modes=['infer']))

Modules: ``settings`` (what a run measures), ``build`` (models, batches, steps),
``measure`` (timing, CPU time, peak memory), ``stats`` (paired ratios, bootstrap),
``worker`` (where models live: this process or persistent workers), ``runner`` (the
interleaved rounds, :func:`profile`), ``report`` (ratios, targets), ``tables`` (CSV / JSON /
markdown),
``plot``, ``flops``, ``gpu_preset``.
"""
from .build import make_task_list
from .flops import EXTRA_FLOP_HANDLES, count_model_flops, count_module_flops
from .machine import allocator_env, machine_info
from .measure import PeakMemory, latency_stats, time_iterations, timed_iterations
from .report import TARGETS, evaluate_targets, find_ratio, paired_ratios, summarize
from .runner import profile
from .settings import (DEFAULT_CONFIGS, SCHEMA_VERSION, ProfileSettings, config_label,
                       default_configs)
from .stats import paired_ratio
from .tables import CSV_COLUMNS, format_summary, write_csv, write_json, write_ratios_csv

__all__ = [
    'EXTRA_FLOP_HANDLES', 'count_model_flops', 'count_module_flops', 'PeakMemory', 'latency_stats',
    'time_iterations', 'timed_iterations', 'DEFAULT_CONFIGS', 'default_configs', 'SCHEMA_VERSION', 'ProfileSettings',
    'config_label', 'machine_info', 'allocator_env', 'make_task_list', 'profile', 'summarize',
    'paired_ratios', 'paired_ratio', 'find_ratio', 'evaluate_targets', 'format_summary',
    'write_csv', 'write_ratios_csv', 'write_json', 'CSV_COLUMNS', 'TARGETS', 'plot_report',
]


def plot_report(report, path):
    """Lazy import of :func:`mtdense.analysis.plot.plot_report` (matplotlib only when plotting)."""
    from .plot import plot_report as _plot
    return _plot(report, path)
