"""Data loaders of every task: training batches sharded over processes and resumable mid-epoch, evaluation shards.

Training order comes from ``DistributedSampler`` (seeded, reshuffled per epoch) and each sample's augmentation from
:class:`~botnet.data.SeededDataset`, so a run is reproducible whatever the worker count, and a resumed run can skip
the batches it has already seen and continue with exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..data.folder import collate_skip_bad
from ..data.transforms import SeededDataset
from .distributed import DistInfo


class SkipSampler(Sampler[int]):
    """The indices of ``sampler`` after the first ``skip`` (resuming in the middle of an epoch)."""

    def __init__(self, sampler: DistributedSampler, skip: int = 0) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


class ShardSampler(Sampler[int]):
    """Every ``world``-th index from ``rank``, in order, without padding: evaluation counts each image once."""

    def __init__(self, length: int, info: DistInfo) -> None:
        self.indices = range(info.rank, length, info.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_loader(
    dataset: Dataset, cfg: Any, info: DistInfo, epoch: int, skip_batches: int = 0, collate_fn=collate_skip_bad
) -> DataLoader:
    """The loader of one epoch, starting after ``skip_batches`` batches of this process.

    The caller checks that the dataset holds at least one batch per process (:func:`batches_per_epoch`).
    """
    seeded = SeededDataset(dataset, cfg.seed)
    seeded.set_epoch(epoch)
    sampler = DistributedSampler(seeded, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
    sampler.set_epoch(epoch)
    return DataLoader(
        seeded,
        batch_size=cfg.batch_size,
        sampler=SkipSampler(sampler, skip_batches * cfg.batch_size),
        num_workers=cfg.workers,
        collate_fn=collate_fn,
        pin_memory=info.device.type == "cuda",
        drop_last=True,
        worker_init_fn=ignore_stop_signals,
    )


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader worker init: Ctrl-C and SIGTERM (sent to the whole process group by terminals and job schedulers)
    are for the main process, which stops at a safe point and then shuts its workers down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batches_per_epoch(dataset: Dataset, cfg: Any, info: DistInfo) -> int:
    per_process = -(-len(dataset) // info.world_size)  # DistributedSampler pads to equal shards
    return per_process // cfg.batch_size


def eval_loader(
    dataset: Dataset, batch_size: int, workers: int, info: DistInfo, collate_fn=collate_skip_bad
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), info),
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=info.device.type == "cuda",
        worker_init_fn=ignore_stop_signals,
    )
