"""mtdense registries: children of mmseg's (which are children of mmengine's).

Building with ``default_scope='mtdense'`` finds mtdense modules first, then falls
back to mmseg and mmengine, so configs can mix ``UPerHead`` (mmseg) with
``VMTAdapter`` (mtdense) freely. ``locations`` lets the registries import the
defining modules lazily when the scope is first used.
"""
import mtdense  # noqa: F401  (installs the mmcv.ops stand-in before mmseg is imported)
from mmengine.registry import Registry
from mmseg.registry import (DATA_SAMPLERS as MMSEG_DATA_SAMPLERS, DATASETS as MMSEG_DATASETS,
                            EVALUATOR as MMSEG_EVALUATOR, HOOKS as MMSEG_HOOKS,
                            LOOPS as MMSEG_LOOPS, METRICS as MMSEG_METRICS,
                            MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS, MODELS as MMSEG_MODELS,
                            OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
                            OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS,
                            OPTIMIZERS as MMSEG_OPTIMIZERS,
                            PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS,
                            RUNNERS as MMSEG_RUNNERS, TRANSFORMS as MMSEG_TRANSFORMS,
                            VISBACKENDS as MMSEG_VISBACKENDS, VISUALIZERS as MMSEG_VISUALIZERS,
                            WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS)

RUNNERS = Registry('runner', parent=MMSEG_RUNNERS, scope='mtdense')
LOOPS = Registry('loop', parent=MMSEG_LOOPS, scope='mtdense', locations=['mtdense.engine'])
HOOKS = Registry('hook', parent=MMSEG_HOOKS, scope='mtdense', locations=['mtdense.engine'])
DATASETS = Registry('dataset', parent=MMSEG_DATASETS, scope='mtdense',
                    locations=['mtdense.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMSEG_DATA_SAMPLERS, scope='mtdense')
TRANSFORMS = Registry('transform', parent=MMSEG_TRANSFORMS, scope='mtdense',
                      locations=['mtdense.datasets.transforms'])
MODELS = Registry('model', parent=MMSEG_MODELS, scope='mtdense', locations=['mtdense.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMSEG_MODEL_WRAPPERS, scope='mtdense',
                          locations=['mtdense.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMSEG_WEIGHT_INITIALIZERS,
                               scope='mtdense', locations=['mtdense.models'])
OPTIMIZERS = Registry('optimizer', parent=MMSEG_OPTIMIZERS, scope='mtdense')
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMSEG_OPTIM_WRAPPERS, scope='mtdense')
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMSEG_OPTIM_WRAPPER_CONSTRUCTORS, scope='mtdense',
                                      locations=['mtdense.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMSEG_PARAM_SCHEDULERS,
                            scope='mtdense')
METRICS = Registry('metric', parent=MMSEG_METRICS, scope='mtdense',
                   locations=['mtdense.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMSEG_EVALUATOR, scope='mtdense',
                     locations=['mtdense.evaluation'])
VISUALIZERS = Registry('visualizer', parent=MMSEG_VISUALIZERS, scope='mtdense',
                       locations=['mtdense.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMSEG_VISBACKENDS, scope='mtdense')

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'VISUALIZERS',
    'VISBACKENDS'
]
