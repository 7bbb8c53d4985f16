"""Multi-task dense datasets, file decoders and (in ``transforms``) the pipeline."""
from .base import BaseMultiTaskDataset, voc_palette
from .io import DECODERS, DataFileError, decode, decode_ann, register_decoder
from .multi_domain import DECATHLON_DOMAINS, DecathlonDataset, ImageFolderDomainsDataset
from .nyud import NYUV2_40_CLASSES, NYUDv2MTDataset
from .pascal_context import (NYU_SHARED_CONTEXT_CLASS_IDS, NYU_SHARED_CONTEXT_CLASSES,
                             PASCAL_VOC_CLASSES, PascalContextMTDataset)
from .samplers import DomainBatchSampler
from .synthetic_dataset import SyntheticMTDataset, load_synthetic_meta
from . import transforms  # noqa: F401,E402  (registers the multi-task transforms)
from .transforms import PackDomainInputs

__all__ = [
    'BaseMultiTaskDataset', 'voc_palette', 'DECODERS', 'DataFileError', 'decode', 'decode_ann',
    'register_decoder', 'NYUV2_40_CLASSES', 'NYUDv2MTDataset', 'NYU_SHARED_CONTEXT_CLASS_IDS',
    'NYU_SHARED_CONTEXT_CLASSES', 'PASCAL_VOC_CLASSES', 'PascalContextMTDataset',
    'SyntheticMTDataset', 'load_synthetic_meta',
    'DECATHLON_DOMAINS', 'DecathlonDataset', 'DomainBatchSampler', 'ImageFolderDomainsDataset',
    'PackDomainInputs'
]
