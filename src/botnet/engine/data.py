"""Datasets and loaders of a training run: the built-in shapes or an ImageFolder, sharded over processes.

Training order comes from ``DistributedSampler`` (seeded, reshuffled per epoch) and each sample's augmentation from
:class:`~botnet.data.SeededDataset`, so a run is reproducible whatever the worker count, and a resumed run can skip
the batches it has already seen and continue with exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision.transforms import v2

from ..data.folder import ImageFolderDataset, collate_skip_bad
from ..data.shapes import ShapesDataset
from ..data.transforms import SeededDataset, build_eval_transform, build_train_transform
from .config import TrainConfig
from .distributed import DistInfo


@dataclass
class Preprocess:
    """How images are prepared for the model; stored in checkpoints so that eval and predict match training."""

    img_size: int
    crop_pct: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    def eval_transform(self):
        return build_eval_transform(
            self.img_size, crop_pct=self.crop_pct, mean=self.mean, std=self.std, interpolation=self.interpolation
        )

    def to_dict(self) -> dict:
        return {**self.__dict__, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """The preprocessing stored in a checkpoint's metadata."""
        return cls(d["img_size"], d["crop_pct"], tuple(d["mean"]), tuple(d["std"]), d["interpolation"])

    def inference_transform(self, native_size: bool = False):
        """uint8 (3, H, W) -> normalised float: the eval resize + center crop, or, ``native_size``, the image as it
        is (any size of at least the network's total stride)."""
        if native_size:
            return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(self.mean), list(self.std))])
        return self.eval_transform()


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


def build_datasets(cfg: TrainConfig, pre: Preprocess, *, train: bool = True) -> tuple[Dataset | None, Dataset]:
    """(train, val) datasets; ``train=False`` builds val only. Raises DataError for a malformed data directory."""
    train_tf = build_train_transform(
        pre.img_size,
        scale=cfg.scale,
        ratio=cfg.ratio,
        hflip=cfg.hflip,
        randaugment=cfg.randaugment,
        mean=pre.mean,
        std=pre.std,
        interpolation=pre.interpolation,
    )
    if cfg.builtin_data:
        val = ShapesDataset("val", pre.eval_transform(), size=pre.img_size, length=cfg.shapes_val, seed=cfg.seed)
        val.preload(cfg.workers)
        if not train:
            return None, val
        tr = ShapesDataset("train", train_tf, size=pre.img_size, length=cfg.shapes_train, seed=cfg.seed)
        return tr.preload(cfg.workers), val
    tr = ImageFolderDataset(cfg.data, "train", train_tf, max_pixels=cfg.max_image_pixels)
    val = ImageFolderDataset(cfg.data, "val", pre.eval_transform(), classes=tr.classes, max_pixels=cfg.max_image_pixels)
    return (tr if train else None), val


def train_loader(
    dataset: Dataset, cfg: TrainConfig, info: DistInfo, epoch: int, skip_batches: int = 0, collate_fn=collate_skip_bad
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


def batches_per_epoch(dataset: Dataset, cfg: TrainConfig, info: DistInfo) -> int:
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
