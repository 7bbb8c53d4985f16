from .prediction_writer_hook import PredictionWriterHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['SafeCheckpointHook', 'MultiTaskVisualizationHook', 'PredictionWriterHook']
