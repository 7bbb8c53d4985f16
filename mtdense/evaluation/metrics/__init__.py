from .decathlon_metric import DecathlonMetric
from .multitask_metric import MultiTaskMetric, format_table

__all__ = ['MultiTaskMetric', 'format_table',
    'DecathlonMetric'
]
