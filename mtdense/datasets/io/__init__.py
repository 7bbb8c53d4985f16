"""File decoders for multi-task dense datasets (``core``: registry and checked readers;
``maps``: images and PNG / .npy maps; ``pascal_parts``: Pascal-Part .mat; ``edges``).

Every decoder has the signature ``decoder(path, **kwargs) -> np.ndarray``, returns
an array in the conventions of ``mtdense.tasks`` (see ``docs/architecture.md``)
and raises :class:`DataFileError` naming the file and what was expected when the
file is missing, unreadable, of the wrong dtype/shape/channels, or holds values
outside the documented range. Decoders are looked up by name in :data:`DECODERS`,
so a dataset's data info says *how* to read each file::

    data_info['ann_info']['depth'] = dict(path='.../depth/0001.npy', decoder='depth_npy')
    depth = decode_ann(data_info['ann_info']['depth'])

Registered decoders:

==================  ==========================================================
``image``           RGB uint8 (H, W, 3) via OpenCV (EXIF orientation ignored so
                    the pixel grid matches the label files)
``label_png``       (H, W) uint8 as stored (e.g. PASCAL semseg 0..20, 255 ignore)
``label_png_minus1`` (H, W) uint8, stored 0 -> 255, stored k -> k - 1 (NYUD-v2)
``parts_png``       (H, W) uint8 human-part ids 0..6 / 255, as stored
``pascal_parts_mat`` Pascal-Part ``anno`` struct -> (H, W) uint8 human parts
``saliency_png``    (H, W) uint8 in {0, 1}: value / 255 > 0.5
``normals_png``     (H, W, 3) float32 unit vectors from 2 v / 255 - 1, optionally
                    masked by a PASCAL-Context ``LabelMap``
``normals_npy``     (H, W, 3) float32 unit vectors, zero vector = invalid
``depth_npy``       (H, W) float32 metres, 0 = invalid
``npy``             any finite float map (a task of your own)
==================  ==========================================================

Edge ground truth: ``edge_labelmap_mat``, ``edge_npy``, ``edge_png`` (``edges.py``).

Label PNGs are read with Pillow, not OpenCV: OpenCV expands palette ("P" mode)
PNGs, such as the PASCAL VOC annotations, to colours and loses the class indices.
"""
from .core import (DECODERS, DataFileError, Decoder, decode, decode_ann, read_binary_png,
                   register_decoder)
from .maps import (decode_depth_npy, decode_image, decode_image_exif, decode_label_png,
                   decode_label_png_minus1, decode_normals_npy, decode_normals_png, decode_npy,
                   decode_parts_png, decode_saliency_png)
from .pascal_parts import PASCAL_PERSON_CLASS_IND, PASCAL_PERSON_PART_IDS, decode_pascal_parts_mat
from .edges import (decode_edge_labelmap_mat, decode_edge_npy, decode_edge_png,  # noqa: E402
                    labelmap_edges)

__all__ = [
    'DECODERS', 'DataFileError', 'Decoder', 'decode', 'decode_ann', 'read_binary_png',
    'register_decoder', 'decode_depth_npy', 'decode_image', 'decode_image_exif',
    'decode_label_png', 'decode_label_png_minus1', 'decode_normals_npy', 'decode_normals_png',
    'decode_npy', 'decode_parts_png', 'decode_saliency_png', 'PASCAL_PERSON_CLASS_IND',
    'PASCAL_PERSON_PART_IDS', 'decode_pascal_parts_mat', 'decode_edge_labelmap_mat',
    'decode_edge_npy', 'decode_edge_png', 'labelmap_edges'
]
