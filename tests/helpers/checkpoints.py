"""Checkpoint payloads shared by the checkpoint tests (tests/checkpoint/, tests/engine/,
tests/tools/)."""
from __future__ import annotations

import io
import os

import torch


def checkpoint_bytes(n: int = 20000, seed: int = 0) -> bytes:
    """A small, valid torch checkpoint (``n`` random weights, ``meta.iter = seed``) as bytes."""
    g = torch.Generator().manual_seed(seed)
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.randn(n, generator=g)}, 'meta': {'iter': seed}}, buf)
    return buf.getvalue()


class MarkerPayload:
    """Pickles to ``os.system('touch <marker>')``: runs when unpickled (the marker file then
    exists), so a test can tell whether a loader executed code from a checkpoint."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))
