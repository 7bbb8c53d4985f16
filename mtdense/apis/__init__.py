"""High-level Python API: build a model from a config + checkpoint and run inference."""
from .inference import (LoadMultiTaskImageFromArray, build_inference_pipeline,
                        dataset_meta_from_config, fill_num_classes, inference_model, init_model,
                        prediction_to_numpy)
from .inferencer import MTDenseInferencer

__all__ = ['init_model', 'inference_model', 'build_inference_pipeline',
           'dataset_meta_from_config', 'fill_num_classes', 'prediction_to_numpy',
           'LoadMultiTaskImageFromArray', 'MTDenseInferencer']
