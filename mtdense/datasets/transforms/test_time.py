"""Test-time resizing and the evaluation protocol of the ground truth.

Two protocols decide at which resolution metrics are computed (one switch:
``MTTestResize(protocol=...)``, or ``tools/test.py --eval-protocol``):

* ``'native'`` (default): the image is resized for the network, the ground truth
  stays at the image's original resolution and predictions are resized back to it
  (the model resizes to the sample's ``eval_shape`` = ``ori_shape``);
* ``'resized'``: the image is resized to exactly ``scale`` (the aspect ratio is not
  kept), and every ground-truth map is resized to that size too by
  :class:`~mtdense.datasets.transforms.LoadMultiTaskAnnotations`, with its task's
  resampling rule (nearest for labels, valid-aware for depth/normals); metrics are
  computed at the network resolution. This is how MTLoRA / Polyhistor evaluate
  (their ``FixedResize`` of image and labels to 448 x 448), so their published rows
  are comparable only under it.

Both record ``eval_protocol`` and ``eval_shape`` in the results; every sample of an
evaluation must use the same protocol (``MultiTaskMetric`` checks it).
"""
from __future__ import annotations

from typing import Tuple, Union

from mmcv.transforms import BaseTransform

from mtdense.registry import TRANSFORMS

from .geometric import _as_pair, _check_img, _resize_results, target_size

EVAL_PROTOCOLS: Tuple[str, ...] = ('native', 'resized')

__all__ = ['MTTestResize', 'EVAL_PROTOCOLS', 'check_eval_protocol']


def check_eval_protocol(protocol: str, where: str) -> str:
    """Return ``protocol`` if it is one of :data:`EVAL_PROTOCOLS`, else raise."""
    if protocol not in EVAL_PROTOCOLS:
        raise ValueError(f'{where}: eval protocol must be one of {list(EVAL_PROTOCOLS)}, '
                         f'got {protocol!r}')
    return protocol


@TRANSFORMS.register_module()
class MTTestResize(BaseTransform):
    """Resize the test image for the network and fix the evaluation protocol.

    Must run before ``LoadMultiTaskAnnotations`` (the ground truth is loaded at
    its original size and, under ``'resized'``, resized by the loader).

    Args:
        scale: ``(h, w)`` network size (an int means square).
        protocol: ``'native'`` or ``'resized'`` (see the module docstring).
        keep_ratio: ``'native'`` only: keep the aspect ratio (long edge <=
            ``max(scale)``, short edge <= ``min(scale)``); pad to ``scale`` with
            ``MTPad(size=scale)`` afterwards so that every test image has the same
            network input size whatever its batch mates (batch-size invariance).
            ``'resized'`` always resizes to exactly ``scale``.
    """

    def __init__(self, scale: Union[int, Tuple[int, int]], protocol: str = 'native',
                 keep_ratio: bool = True) -> None:
        self.scale = _as_pair(scale, 'MTTestResize.scale')
        self.protocol = check_eval_protocol(protocol, 'MTTestResize')
        self.keep_ratio = bool(keep_ratio)

    def transform(self, results: dict) -> dict:
        img = _check_img(results, 'MTTestResize')
        if results.get('task_fields'):
            raise ValueError(f'MTTestResize: ground truth {results["task_fields"]} is already '
                             f'loaded for {results.get("img_path", "this sample")}; put '
                             'MTTestResize before LoadMultiTaskAnnotations (the loader applies '
                             'the evaluation protocol to the ground truth)')
        keep = self.keep_ratio and self.protocol == 'native'
        _resize_results(results, target_size(img.shape[:2], self.scale, keep))
        results['eval_protocol'] = self.protocol
        if self.protocol == 'resized':
            results['eval_shape'] = tuple(results['img_shape'][:2])
        else:
            results['eval_shape'] = tuple(results['ori_shape'][:2])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, protocol={self.protocol!r}, '
                f'keep_ratio={self.keep_ratio})')
