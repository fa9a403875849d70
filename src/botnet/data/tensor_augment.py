"""The training augmentation for uint8 image tensors, with its randomness drawn from its own generator.

:class:`TensorTrainAugment` is ``build_train_transform`` without RandAugment (RandomResizedCrop, horizontal flip,
normalisation) written as plain tensor calls: it draws the same numbers in the same order as the ``transforms.v2``
pipeline and runs the same kernels, so from the same generator state it gives the same pixels, bit for bit, at a
fraction of the cost (no ``Compose`` dispatch, no ``tv_tensors`` wrapping and, under :class:`SeededDataset`, no
saving and restoring of the global random state per sample: the dataset seeds :attr:`TensorTrainAugment.generator`).

Normalisation can be left to the batch (``normalize=False`` and :func:`normalize_batch`): the same elementwise
operations on the stacked batch give the same numbers, and uint8 samples are a quarter of the bytes to move between
processes.

The crops themselves can be left to the batch too (``defer=True``): a sample is then a :class:`PendingCrop`, its
random draws already made, and :func:`render_crops` (called by the collate function) resizes all crops of one size in
a single call. On small images the per-call overhead is most of a resize and crops repeat sizes (64 px crops of
80-100% of the area have 8 sides), so this halves the per-sample cost; the pixels are the same, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD
from .transforms import _interpolation, _size_hw, check_crop_args


def crop_params(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random resized crop: ``v2.RandomResizedCrop``'s draws, from ``generator``.

    Up to 10 tries of an area fraction uniform in ``scale`` and a log-uniform aspect ratio in ``ratio``; the first
    crop that fits is placed uniformly, otherwise the center crop clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class PendingCrop(NamedTuple):
    """A random resized crop of ``image`` whose draws are made and whose pixels are not: :func:`render_crops`."""

    image: Tensor  # (3, H, W) uint8, the source
    box: tuple[int, int, int, int]  # top, left, height, width
    flip: bool
    size: tuple[int, int]  # output (height, width)
    mode: TF.InterpolationMode


def render_crops(crops: Sequence[PendingCrop]) -> Tensor:
    """The crops as a uint8 ``(B, 3, h, w)`` batch: one resize call per crop size, the same pixels as one by one."""
    size, mode = crops[0].size, crops[0].mode
    if any(c.size != size or c.mode != mode for c in crops):
        raise ValueError("render_crops needs crops of one output size and interpolation; got a mix in one batch")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(crops):
        groups.setdefault(c.box[2:], []).append(i)
    order, parts = [], []
    for (h, w), members in groups.items():
        stack = torch.stack([crops[i].image[:, t : t + h, s : s + w] for i in members for t, s in [crops[i].box[:2]]])
        parts.append(TF.resize_image(stack, list(size), interpolation=mode, antialias=True))  # (n, 3, h, w)
        order += members
    out = torch.cat(parts) if len(parts) > 1 else parts[0]  # (B, 3, h, w), in group order
    flip = torch.tensor([crops[i].flip for i in order])
    if flip.any():
        out[flip] = out[flip].flip(-1)
    return out.index_select(0, torch.tensor(order).argsort())  # back in batch order


def normalize_batch(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 ``(..., 3, H, W)`` -> float32 scaled to 0..1 and normalised: ``v2.ToDtype(scale=True)`` + ``Normalize``."""
    floats = TF.to_dtype(images, torch.float32, scale=True)  # a new tensor: normalised in place, the same numbers
    return TF.normalize(floats, list(mean), list(std), inplace=True)  # one batch-sized allocation, not two


class TensorTrainAugment:
    """RandomResizedCrop -> horizontal flip -> [normalise] of a uint8 ``(3, H, W)`` tensor (or an RGB PIL image).

    Args:
        img_size: output size, an int or ``(height, width)``.
        scale, ratio, hflip, mean, std, interpolation: as :func:`~botnet.data.transforms.build_train_transform`.
        normalize: return float32 normalised images; ``False`` returns the uint8 crop (normalise the batch with
            :func:`normalize_batch`).
        defer: return a :class:`PendingCrop` (the draws made, the pixels not) for :func:`render_crops` to make with
            its batch; implies ``normalize=False``.

    Randomness comes from :attr:`generator` (a ``torch.Generator`` of its own): seed it before each call for a
    reproducible sample. The global random state is neither used nor touched.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        normalize: bool = True,
        defer: bool = False,
    ) -> None:
        self.size = list(_size_hw(img_size))
        self.mode = _interpolation(interpolation)
        check_crop_args(scale, ratio, hflip)
        self.scale, self.ratio, self.hflip = tuple(scale), tuple(ratio), hflip
        self.mean, self.std, self.normalize, self.defer = list(mean), list(std), normalize and not defer, defer
        self.generator = torch.Generator()

    def __call__(self, img: Tensor | Image.Image) -> Tensor | PendingCrop:
        if isinstance(img, Image.Image):
            img = TF.pil_to_tensor(img)
        if not isinstance(img, Tensor) or img.dtype != torch.uint8 or img.ndim != 3:
            got = f"{img.dtype} tensor of shape {tuple(img.shape)}" if isinstance(img, Tensor) else type(img).__name__
            raise TypeError(f"TensorTrainAugment takes a uint8 (C, H, W) tensor or a PIL image, got a {got}")
        img = img.as_subclass(Tensor)  # a plain tensor: no tv_tensors dispatch
        top, left, h, w = crop_params(img.shape[-2], img.shape[-1], self.scale, self.ratio, self.generator)
        flip = self.hflip > 0 and bool(torch.rand(1, generator=self.generator) < self.hflip)  # v2's comparison
        if self.defer:
            return PendingCrop(img, (top, left, h, w), flip, tuple(self.size), self.mode)
        out = TF.resized_crop(img, top, left, h, w, self.size, interpolation=self.mode, antialias=True)
        if flip:
            out = TF.horizontal_flip(out)
        return normalize_batch(out, self.mean, self.std) if self.normalize else out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, hflip={self.hflip}, "
            f"interpolation={self.mode.value}, normalize={self.normalize}, defer={self.defer})"
        )
