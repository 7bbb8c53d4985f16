"""Cost analysis: FLOPs, parameters, latency, throughput and memory versus the number of tasks.

Entry point for users: ``tools/profile_tasks.py``; library use::

    from mtdense.analysis import ProfileSettings, profile
    report = profile(ProfileSettings(num_tasks=[1, 4], img_size=224, modes=['infer']))
"""
from .flops import EXTRA_FLOP_HANDLES, count_model_flops, count_module_flops
from .measure import PeakMemory, latency_stats, time_iterations
from .profiler import (DEFAULT_CONFIGS, SCHEMA_VERSION, ProfileSettings, config_label,
                       machine_info, make_task_list, profile, run_job, summarize, write_csv,
                       write_json)

__all__ = [
    'EXTRA_FLOP_HANDLES', 'count_model_flops', 'count_module_flops', 'PeakMemory', 'latency_stats',
    'time_iterations', 'DEFAULT_CONFIGS', 'SCHEMA_VERSION', 'ProfileSettings', 'config_label',
    'machine_info', 'make_task_list', 'profile', 'run_job', 'summarize', 'write_csv', 'write_json',
    'plot_report',
]


def plot_report(report, path):
    """Lazy import of :func:`mtdense.analysis.plot.plot_report` (matplotlib only when plotting)."""
    from .plot import plot_report as _plot
    return _plot(report, path)
