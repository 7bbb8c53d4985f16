from .prediction_writer_hook import PredictionWriterHook
from .safe_checkpoint_hook import AtomicCheckpointHook, SafeCheckpointHook
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['AtomicCheckpointHook', 'SafeCheckpointHook', 'MultiTaskVisualizationHook',
           'PredictionWriterHook']
