"""Procedural synthetic scenes with exact ground truth for all five dense tasks.

numpy ray casting of a room (floor, walls, optional ceiling) with random primitives
and articulated people; see :class:`SyntheticSceneGenerator` (in memory) and
:class:`SyntheticDatasetWriter` / ``tools/make_synthetic.py`` (on disk, in mtdense's own
layout), :class:`ReleaseLayoutWriter` (``--layout pascal-mt|nyud-mt``: the same scenes in
the exact layouts of the PASCAL_MT / NYUD_MT releases, at their image sizes).
"""
from .camera import CameraPose, PinholeCamera
from .classes import CLASSES, GENERATOR_VERSION, PALETTE, SALIENT_CLASSES
from .people import PoseRanges, make_person
from .primitives import Box, Capsule, Cylinder, Ellipsoid, Primitive, Quad, Sphere
from .renderer import SyntheticRenderer, SyntheticSceneGenerator
from .scene import Scene, SceneConfig, sample_scene
from .textures import Material, sample_material
from .writer import LAYOUT_DIRS, META_FILE, SyntheticDatasetWriter, sample_id, write_sample
from .release_layouts import LAYOUTS as RELEASE_LAYOUTS, ReleaseLayoutWriter
from .multi_domain import SYNTHETIC_DOMAINS, make_synthetic_multi_domain

__all__ = [
    'CameraPose', 'PinholeCamera', 'CLASSES', 'GENERATOR_VERSION', 'PALETTE',
    'SALIENT_CLASSES', 'PoseRanges', 'make_person', 'Box', 'Capsule', 'Cylinder', 'Ellipsoid',
    'Primitive', 'Quad', 'Sphere', 'SyntheticRenderer', 'SyntheticSceneGenerator', 'Scene',
    'SceneConfig', 'sample_scene', 'Material', 'sample_material', 'LAYOUT_DIRS', 'META_FILE',
    'SyntheticDatasetWriter', 'sample_id', 'write_sample', 'ReleaseLayoutWriter',
    'RELEASE_LAYOUTS', 'SYNTHETIC_DOMAINS', 'make_synthetic_multi_domain'
]
