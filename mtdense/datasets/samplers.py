"""Batch samplers: :class:`DomainBatchSampler` (every batch from one domain of a
:class:`~mtdense.datasets.multi_domain.MultiDomainDataset`)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, List

from torch.utils.data import Sampler

from mtdense.registry import DATA_SAMPLERS

__all__ = ['DomainBatchSampler']


@DATA_SAMPLERS.register_module()
class DomainBatchSampler(Sampler):
    """Batches that each hold samples of one domain.

    Indices come from ``sampler`` in its order and are buffered per domain; a
    domain's buffer is emitted when it reaches ``batch_size``. At the end the
    incomplete buffers are emitted (or dropped with ``drop_last``).

    Args:
        sampler: index sampler whose ``dataset`` is a :class:`MultiDomainDataset`.
        batch_size: samples per batch.
        drop_last: drop each domain's last incomplete batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False) -> None:
        if int(batch_size) <= 0:
            raise ValueError(f'DomainBatchSampler: batch_size must be positive, got {batch_size}')
        dataset = getattr(sampler, 'dataset', None)
        if dataset is None or not hasattr(dataset, 'get_data_info'):
            raise TypeError('DomainBatchSampler: the sampler must expose the dataset '
                            '(mmengine DefaultSampler/InfiniteSampler do)')
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        self._domain_of = [dataset.get_data_info(i)['domain'] for i in range(len(dataset))]

    def __iter__(self) -> Iterator[List[int]]:
        buffers: Dict[str, List[int]] = OrderedDict()
        for idx in self.sampler:
            buf = buffers.setdefault(self._domain_of[idx], [])
            buf.append(idx)
            if len(buf) == self.batch_size:
                yield list(buf)
                buf.clear()
        if not self.drop_last:
            for buf in buffers.values():
                if buf:
                    yield list(buf)

    def __len__(self) -> int:
        counts: Dict[str, int] = {}
        for idx in self.sampler:
            counts[self._domain_of[idx]] = counts.get(self._domain_of[idx], 0) + 1
        if self.drop_last:
            return sum(c // self.batch_size for c in counts.values())
        return sum(-(-c // self.batch_size) for c in counts.values())
