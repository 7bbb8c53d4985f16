"""PASCAL-Context multi-task release (ASTMT ``PASCAL_MT``).

Layout read (exactly the release's)::

    <root>/JPEGImages/<id>.jpg
    <root>/ImageSets/Context/{train,val}.txt        4998 / 5105 ids
    <root>/semseg/VOC12/<id>.png                    21 classes (0 background), 255 ignore;
    <root>/semseg/pascal-context/<id>.png           ... used when the VOC12 file is absent
    <root>/human_parts/<id>.mat                     Pascal-Part ``anno`` struct
    <root>/sal_distill/<id>.png                     distilled saliency, / 255 > 0.5
    <root>/normals_distill/<id>.png                 distilled normals, 2 v / 255 - 1
    <root>/pascal-context/trainval/<id>.mat         459-class ``LabelMap``: normals are
                                                    valid only on NYU-shared classes; the
                                                    edges are thin(|Laplacian(LabelMap)| > 0)
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

from mtdense.registry import DATASETS
from mtdense.tasks import HUMAN_PARTS_CLASSES

from .base import BaseMultiTaskDataset, voc_palette
from .io import DataFileError

PASCAL_VOC_CLASSES: Tuple[str, ...] = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor')

#: PASCAL-Context 459-class label ids (the ``LabelMap`` values of
#: ``pascal-context/trainval/<id>.mat``) on which the distilled normals are valid:
#: every Context class whose name is also a class name of the raw NYUv2 labelling
#: (894 names; ``unknown`` excluded), plus ``tvmonitor`` (427), which NYUv2 calls
#: ``television``/``monitor``. This is the rule of the ASTMT release; the table was
#: derived from the two public class-name lists (170 classes).
NYU_SHARED_CONTEXT_CLASSES: Tuple[Tuple[int, str], ...] = (
    (3, 'air conditioner'), (4, 'antenna'), (6, 'ashtray'), (9, 'bag'), (10, 'ball'),
    (11, 'balloon'), (13, 'barrel'), (15, 'basket'), (17, 'bathtub'), (18, 'bed'), (22, 'bench'),
    (23, 'bicycle'), (29, 'blackboard'), (30, 'board'), (33, 'book'), (34, 'bottle'),
    (36, 'bowl'), (37, 'box'), (38, 'bracelet'), (39, 'brick'), (41, 'broom'), (43, 'bucket'),
    (46, 'cabinet'), (49, 'cake'), (50, 'calculator'), (51, 'calendar'), (53, 'camera'),
    (55, 'can'), (56, 'candle'), (59, 'car'), (61, 'cart'), (62, 'case'), (65, 'cat'),
    (66, 'cd'), (68, 'ceiling'), (69, 'cell phone'), (72, 'chair'), (73, 'chessboard'),
    (78, 'clock'), (83, 'coffee machine'), (84, 'comb'), (85, 'computer'), (87, 'cone'),
    (88, 'container'), (95, 'corkscrew'), (96, 'counter'), (101, 'crate'), (104, 'cup'),
    (105, 'curtain'), (107, 'cutting board'), (111, 'dishwasher'), (113, 'dog'), (115, 'door'),
    (122, 'drum'), (124, 'duck'), (135, 'envelope'), (141, 'fan'), (142, 'faucet'),
    (143, 'fax machine'), (146, 'fire extinguisher'), (150, 'fish tank'), (154, 'flag'),
    (157, 'flashlight'), (158, 'floor'), (159, 'flower'), (165, 'fork'), (172, 'fruit'),
    (174, 'furnace'), (181, 'glass'), (183, 'globe'), (184, 'glove'), (191, 'guitar'),
    (193, 'hammer'), (195, 'handle'), (197, 'hanger'), (199, 'hat'), (202, 'heater'),
    (213, 'ipod'), (215, 'ironing board'), (216, 'jar'), (219, 'key'), (220, 'keyboard'),
    (223, 'knife'), (225, 'ladder'), (228, 'laptop'), (230, 'lid'), (232, 'light'),
    (233, 'light bulb'), (238, 'lock'), (239, 'machine'), (242, 'map'), (243, 'mask'),
    (246, 'mattress'), (250, 'microphone'), (251, 'microwave'), (252, 'mirror'), (255, 'money'),
    (260, 'mouse'), (261, 'mouse pad'), (263, 'napkin'), (269, 'oven'), (272, 'pan'),
    (273, 'paper'), (275, 'paper cutter'), (281, 'pen'), (283, 'pencil'), (284, 'person'),
    (285, 'photo'), (286, 'piano'), (287, 'picture'), (288, 'pig'), (290, 'pillow'),
    (291, 'pipe'), (292, 'pitcher'), (293, 'plant'), (295, 'plate'), (304, 'pool table'),
    (307, 'pot'), (309, 'printer'), (310, 'projector'), (314, 'radiator'), (315, 'radio'),
    (319, 'range hood'), (323, 'remote control'), (329, 'rope'), (330, 'rug'), (331, 'ruler'),
    (336, 'scale'), (342, 'sculpture'), (345, 'sewing machine'), (349, 'shelves'),
    (350, 'shoe'), (351, 'shopping cart'), (352, 'shovel'), (355, 'sign'), (357, 'sink'),
    (368, 'sofa'), (370, 'spatula'), (371, 'speaker'), (374, 'spoon'), (379, 'stapler'),
    (380, 'stick'), (383, 'stool'), (384, 'stove'), (397, 'table'), (401, 'tape'),
    (403, 'telephone'), (405, 'tent'), (407, 'toaster'), (408, 'toilet'), (411, 'toothbrush'),
    (412, 'towel'), (413, 'toy'), (414, 'toy car'), (417, 'trampoline'), (419, 'tray'),
    (421, 'tricycle'), (423, 'trophy'), (427, 'tvmonitor'), (429, 'typewriter'),
    (430, 'umbrella'), (432, 'vacuum cleaner'), (440, 'wall'), (441, 'wallet'),
    (442, 'wardrobe'), (443, 'washing machine'), (444, 'watch'), (446, 'water dispenser'),
    (454, 'window'), (457, 'wire'))
NYU_SHARED_CONTEXT_CLASS_IDS: Tuple[int, ...] = tuple(i for i, _ in NYU_SHARED_CONTEXT_CLASSES)


@DATASETS.register_module()
class PascalContextMTDataset(BaseMultiTaskDataset):
    """PASCAL-Context multi-task split (semseg, human_parts, saliency, normals; edge).

    ``tasks=None`` reads the four tasks of the usual 4-task setting; the fifth, ``edge``
    (ASTMT's edges of the Context ``LabelMap``), is read when listed.

    Args:
        data_root: the ``PASCAL_MT`` folder.
        split: ``'train'`` or ``'val'`` (any ``ImageSets/Context/<split>.txt``).
        tasks: subset of ``('semseg', 'human_parts', 'saliency', 'normals', 'edge')``.
        normals_valid_classes: ``LabelMap`` ids on which normals are valid
            (default :data:`NYU_SHARED_CONTEXT_CLASS_IDS`); others get the zero vector.
        parts_person_fill: 0 (default, ASTMT) or 255: label of person pixels that
            no part mask covers (see ``mtdense.datasets.io.decode_pascal_parts_mat``).
        allow_missing_parts: treat a missing ``human_parts/<id>.mat`` as "no person"
            (all 255) instead of an error. The release has a file for every image.
        **kwargs: see :class:`BaseMultiTaskDataset`.
    """

    METAINFO = dict(classes=PASCAL_VOC_CLASSES, palette=voc_palette(len(PASCAL_VOC_CLASSES)),
                    part_classes=HUMAN_PARTS_CLASSES, edge_max_dist=0.0075)
    AVAILABLE_TASKS = ('semseg', 'human_parts', 'saliency', 'normals', 'edge')
    DEFAULT_TASKS = ('semseg', 'human_parts', 'saliency', 'normals')
    SPLIT_FILE = os.path.join('ImageSets', 'Context', '{split}.txt')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 tasks: Optional[Sequence[str]] = None,
                 normals_valid_classes: Optional[Sequence[int]] = None,
                 parts_person_fill: int = 0,
                 allow_missing_parts: bool = False,
                 **kwargs: Any) -> None:
        if normals_valid_classes is None:
            normals_valid_classes = NYU_SHARED_CONTEXT_CLASS_IDS
        self.normals_valid_classes = [int(c) for c in normals_valid_classes]
        if not self.normals_valid_classes:
            raise ValueError('PascalContextMTDataset: normals_valid_classes is empty')
        if parts_person_fill not in (0, 255):
            raise ValueError(f'PascalContextMTDataset: parts_person_fill must be 0 or 255, '
                             f'got {parts_person_fill!r}')
        self.parts_person_fill = parts_person_fill
        self.allow_missing_parts = allow_missing_parts
        super().__init__(data_root, split=split, tasks=tasks, **kwargs)

    def image_file(self, img_id: str) -> str:
        return os.path.join(self.data_root, 'JPEGImages', f'{img_id}.jpg')

    def semseg_file(self, img_id: str) -> str:
        """``semseg/VOC12/<id>.png`` if present, else ``semseg/pascal-context/<id>.png``."""
        candidates = [os.path.join(self.data_root, 'semseg', sub, f'{img_id}.png')
                      for sub in ('VOC12', 'pascal-context')]
        for c in candidates:
            if os.path.isfile(c):
                return c
        raise DataFileError(f'{candidates[0]}: semseg file of id {img_id!r} not found, nor '
                            f'{candidates[1]}')

    def ann_entry(self, task: str, img_id: str) -> Dict[str, Any]:
        root = self.data_root
        if task == 'semseg':
            return dict(path=self.semseg_file(img_id), decoder='label_png',
                        num_classes=len(PASCAL_VOC_CLASSES))
        if task == 'human_parts':
            path: Optional[str] = os.path.join(root, 'human_parts', f'{img_id}.mat')
            if self.allow_missing_parts and not os.path.isfile(path):
                path = None
            return dict(path=path, decoder='pascal_parts_mat', image_path=self.image_file(img_id),
                        person_fill=self.parts_person_fill,
                        allow_missing=self.allow_missing_parts)
        if task == 'saliency':
            return dict(path=os.path.join(root, 'sal_distill', f'{img_id}.png'),
                        decoder='saliency_png')
        if task == 'normals':
            return dict(path=os.path.join(root, 'normals_distill', f'{img_id}.png'),
                        decoder='normals_png',
                        valid_mask_mat=os.path.join(root, 'pascal-context', 'trainval',
                                                    f'{img_id}.mat'),
                        valid_classes=list(self.normals_valid_classes))
        if task == 'edge':
            return dict(path=os.path.join(root, 'pascal-context', 'trainval', f'{img_id}.mat'),
                        decoder='edge_labelmap_mat')
        raise KeyError(f'PascalContextMTDataset has no task {task!r}')
