"""Fixed label sets of the synthetic scenes (part of the on-disk format; bump
``GENERATOR_VERSION`` whenever anything here or in the renderer's output changes)."""
from __future__ import annotations

from typing import Dict, Tuple

from mtdense.tasks import HUMAN_PARTS_CLASSES

#: Version of the generator written to ``meta.json``; datasets made by different
#: versions are different datasets even for the same seed.
GENERATOR_VERSION = '1.1'  # 1.1: edge maps

#: Semantic classes (index = class id in the pipeline; stored on disk as id + 1).
CLASSES: Tuple[str, ...] = ('wall', 'floor', 'ceiling', 'table', 'box', 'ball', 'cylinder',
                            'person')
#: Visualisation colours (RGB) of :data:`CLASSES`.
PALETTE: Tuple[Tuple[int, int, int], ...] = ((174, 199, 232), (152, 223, 138), (255, 255, 204),
                                             (140, 86, 75), (255, 127, 14), (214, 39, 40),
                                             (148, 103, 189), (220, 20, 60))
CLASS_ID: Dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

#: Room surfaces are not salient; every free-standing object and every person is.
SALIENT_CLASSES: Tuple[str, ...] = ('table', 'box', 'ball', 'cylinder', 'person')

#: Person part ids (same order as :data:`mtdense.tasks.HUMAN_PARTS_CLASSES`).
PART_ID: Dict[str, int] = {name: i for i, name in enumerate(HUMAN_PARTS_CLASSES)}

assert len(PALETTE) == len(CLASSES)
