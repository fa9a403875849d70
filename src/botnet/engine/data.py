"""Data loaders of every task: training batches sharded over processes and resumable mid-epoch, evaluation shards.

Training order comes from ``DistributedSampler`` (seeded, reshuffled per epoch) and each sample's augmentation from
:class:`~botnet.data.SeededDataset`, so a run is reproducible whatever the worker count, and a resumed run can skip
the batches it has already seen and continue with exactly the batches an uninterrupted run would have drawn.

A run's training batches come from one :class:`TrainLoader`: its worker processes start once and serve every epoch
(``persistent_workers``), because the sampler hands them ``(epoch, index)`` keys. Forking them anew each epoch would
cost their start-up and, on CPU, copy-on-write faults over the training process's memory in the first steps after
each fork (2.7 s an epoch for botnet50 at 224 px, batch 16, 2 workers).
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


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` keys of ``sampler``'s shard of one epoch, after the first ``skip`` (resuming mid-epoch).

    The epoch travels with every index, so worker processes kept from one epoch to the next augment each sample as
    ``(seed, epoch, index)`` says (:class:`~botnet.data.SeededDataset` reads the key).
    """

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.epoch, self.skip = sampler, 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.epoch, self.skip = epoch, skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in itertools.islice(iter(self.sampler), self.skip, None))

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


class TrainLoader:
    """The training batches of every epoch of a run, from one ``DataLoader`` whose workers live for the whole run.

    :meth:`epoch` arms it for an epoch and returns the ``DataLoader`` to iterate; :meth:`close` stops the workers.
    The caller checks that the dataset holds at least one batch per process (:func:`batches_per_epoch`).
    """

    def __init__(self, dataset: Dataset, cfg: Any, info: DistInfo, collate_fn=collate_skip_bad) -> None:
        seeded = SeededDataset(dataset, cfg.seed)
        shard = DistributedSampler(seeded, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=cfg.seed)
        self.sampler, self.batch_size = EpochSampler(shard), cfg.batch_size
        self.loader: DataLoader | None = DataLoader(
            seeded,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.workers,
            collate_fn=collate_fn,
            pin_memory=info.device.type == "cuda",
            drop_last=True,
            worker_init_fn=ignore_stop_signals,
            persistent_workers=cfg.workers > 0,
        )

    def epoch(self, epoch: int, skip_batches: int = 0) -> DataLoader:
        """The loader of ``epoch``, starting after ``skip_batches`` batches of this process."""
        if self.loader is None:
            raise RuntimeError("this TrainLoader is closed")
        self.sampler.set_epoch(epoch, skip_batches * self.batch_size)
        return self.loader

    def close(self) -> None:
        """Stop the worker processes (idempotent)."""
        self.loader = None  # the last reference to the DataLoader and its iterator: its workers shut down


def train_loader(
    dataset: Dataset, cfg: Any, info: DistInfo, epoch: int, skip_batches: int = 0, collate_fn=collate_skip_bad
) -> DataLoader:
    """The loader of one epoch, starting after ``skip_batches`` batches of this process (a :class:`TrainLoader` of
    its own: workers, if any, start for this epoch and stop when it is dropped)."""
    return TrainLoader(dataset, cfg, info, collate_fn).epoch(epoch, skip_batches)


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
