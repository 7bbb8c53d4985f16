from .multitask_data_sample import MultiTaskDataSample
from .predictions import compact_raw, prediction_to_numpy

__all__ = ['MultiTaskDataSample', 'compact_raw', 'prediction_to_numpy']
