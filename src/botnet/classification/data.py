"""The data of a classification run: the built-in shapes or an ImageFolder, and how images are preprocessed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..data.shapes import ShapesDataset
from ..data.split import image_folder_splits
from ..data.tensor_augment import TensorTrainAugment
from ..data.transforms import build_eval_transform, build_train_transform
from ..engine.distributed import DistInfo
from ..engine.reporting import log
from .config import TrainConfig


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


def build_datasets(
    cfg: TrainConfig, pre: Preprocess, *, train: bool = True, info: DistInfo | None = None
) -> tuple[Dataset | None, Dataset]:
    """(train, val) datasets; ``train=False`` builds val only. Raises DataError for a malformed data directory.

    An ImageFolder without ``val/`` has ``cfg.val_fraction`` of each class held out (:mod:`botnet.data.split`);
    that and a class-imbalance warning are logged (by the main process of ``info``).
    """
    aug = dict(scale=cfg.scale, ratio=cfg.ratio, hflip=cfg.hflip, mean=pre.mean, std=pre.std)
    # Images travel as uint8 tensors (folders: read_rgb, JPEGs decoded by TorchCodec), so training, validation and
    # `botnet predict` resize with the same torch kernels. Without RandAugment the augmentation is the v2 pipeline's,
    # pixel for pixel, without its per-sample overhead; its uint8 crops are normalised by the trainer per batch.
    if cfg.randaugment is None:
        # the cached built-in images: crops made per batch by the collate function, one resize per crop size
        train_tf = TensorTrainAugment(
            pre.img_size, interpolation=pre.interpolation, normalize=False, defer=cfg.builtin_data, **aug
        )
    else:
        train_tf = build_train_transform(
            pre.img_size, randaugment=cfg.randaugment, interpolation=pre.interpolation, **aug
        )
    if cfg.builtin_data:
        val = ShapesDataset("val", pre.eval_transform(), size=pre.img_size, length=cfg.shapes_val, seed=cfg.seed)
        val.preload(cfg.workers)
        if not train:
            return None, val
        tr = ShapesDataset("train", train_tf, size=pre.img_size, length=cfg.shapes_train, seed=cfg.seed)
        return tr.preload(cfg.workers), val
    tr, val, notes = image_folder_splits(
        cfg.data,
        train_tf,
        pre.eval_transform(),
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        max_pixels=cfg.max_image_pixels,
        need_train=train,
        tensors=True,
    )
    for note in notes:
        log(note, enabled=info is None or info.is_main)
    return (tr if train else None), val
