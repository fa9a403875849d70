"""Classification transforms (torchvision ``transforms.v2``), batch MixUp / CutMix and per-sample seeded augmentation.

The train recipe is timm's / torchvision's reference one: RandomResizedCrop, horizontal flip, optional RandAugment,
normalisation; eval resizes to ``size / crop_pct`` and center-crops (timm's ``crop_pct``).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..models.botnet import IMAGENET_MEAN, IMAGENET_STD

_RANDAUGMENT_BINS = 11  # magnitude m in 0..10 takes m/10 of each op's maximum, as in timm and the TF reference


def _size_hw(img_size: int | Sequence[int]) -> tuple[int, int]:
    hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(hw) != 2 or not all(isinstance(s, int) and s > 0 for s in hw):
        raise ValueError(f"img_size must be a positive int or a (height, width) pair of positive ints, got {img_size}")
    return hw  # type: ignore[return-value]


def _interpolation(name: str) -> v2.InterpolationMode:
    try:
        return v2.InterpolationMode(name)
    except ValueError:
        choices = ", ".join(m.value for m in v2.InterpolationMode)
        raise ValueError(f"unknown interpolation {name!r}; choose one of {choices}") from None


def parse_randaugment(spec: str) -> tuple[int, int]:
    """Parse a timm-style RandAugment string ``"rand-m<magnitude>-n<num_ops>"`` into ``(magnitude, num_ops)``.

    Either part may be left out (defaults as in timm: magnitude 10, 2 ops); magnitude is an int in 0..10.
    """
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(f"RandAugment spec must start with 'rand', e.g. 'rand-m9-n2', got {spec!r}")
    magnitude, num_ops = 10, 2
    for part in parts[1:]:
        match = re.fullmatch(r"([mn])(\d+)", part)
        if match is None:
            raise ValueError(
                f"cannot read {part!r} in RandAugment spec {spec!r}; supported: 'm<int>' (magnitude 0..10) and "
                "'n<int>' (number of ops), e.g. 'rand-m9-n2'"
            )
        if match.group(1) == "m":
            magnitude = int(match.group(2))
        else:
            num_ops = int(match.group(2))
    if magnitude > _RANDAUGMENT_BINS - 1:
        raise ValueError(f"RandAugment magnitude must be in 0..{_RANDAUGMENT_BINS - 1}, got {magnitude} in {spec!r}")
    if num_ops < 1:
        raise ValueError(f"RandAugment needs at least one op, got n{num_ops} in {spec!r}")
    return magnitude, num_ops


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]


def check_crop_args(scale: tuple[float, float], ratio: tuple[float, float], hflip: float) -> None:
    """Refuse a random-resized-crop / flip setting that cannot be drawn from, saying what is allowed."""
    if not 0.0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (min, max) area fractions with 0 < min <= max, got {scale}")
    if not 0.0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (min, max) aspect ratios with 0 < min <= max, got {ratio}")
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip is a probability in [0, 1], got {hflip}")


def build_train_transform(
    img_size: int | tuple[int, int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    randaugment: str | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """Training augmentation for a PIL RGB image or a uint8 ``(3, H, W)`` tensor; returns a float ``(3, h, w)`` tensor.

    Args:
        img_size: output size, an int or ``(height, width)``.
        scale: area range of the random crop, as a fraction of the image.
        ratio: aspect-ratio range of the random crop.
        hflip: probability of a horizontal flip; 0 leaves it out.
        randaugment: e.g. ``"rand-m9-n2"`` (see :func:`parse_randaugment`) for torchvision's RandAugment with its op
            set, magnitude on timm's 0..10 scale, filled with the mean color; ``None`` leaves it out.
        mean, std: per-channel normalisation, on the 0..1 scale.
        interpolation: ``"bilinear"``, ``"bicubic"``, ... (torchvision's ``InterpolationMode`` values).
    """
    size = _size_hw(img_size)
    mode = _interpolation(interpolation)
    check_crop_args(scale, ratio, hflip)

    steps: list[v2.Transform] = [
        v2.RandomResizedCrop(size, scale=scale, ratio=ratio, interpolation=mode, antialias=True)
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if randaugment is not None:
        magnitude, num_ops = parse_randaugment(randaugment)
        fill = [round(255 * m) for m in mean]
        steps.append(
            v2.RandAugment(
                num_ops=num_ops,
                magnitude=magnitude,
                num_magnitude_bins=_RANDAUGMENT_BINS,
                interpolation=mode,
                fill=fill,
            )
        )
    return v2.Compose(steps + _to_normalized_tensor(mean, std))


def build_eval_transform(
    img_size: int | tuple[int, int],
    *,
    crop_pct: float = 0.875,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> v2.Compose:
    """Deterministic evaluation transform: resize, center-crop ``img_size``, normalise (timm's ``crop_pct``).

    An int ``img_size`` resizes the shorter side to ``floor(img_size / crop_pct)`` keeping the aspect ratio; a
    ``(height, width)`` pair resizes to ``(floor(height / crop_pct), floor(width / crop_pct))`` as timm does.
    """
    size = _size_hw(img_size)
    mode = _interpolation(interpolation)
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1] (1 resizes to the crop size itself), got {crop_pct}")
    if isinstance(img_size, int):
        resize: int | list[int] = math.floor(img_size / crop_pct)
    else:
        resize = [math.floor(s / crop_pct) for s in size]
    steps = [v2.Resize(resize, interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps + _to_normalized_tensor(mean, std))


class BatchMix:
    """MixUp / CutMix on a collated batch, always giving soft targets (``v2.MixUp`` / ``v2.CutMix``).

    With both alphas > 0 one of the two is picked at random per batch. The coin for ``prob`` and the mixing draws use
    torch's global RNG, so ``torch.manual_seed`` makes it reproducible. Label smoothing is left to the loss.

    Args:
        num_classes: width of the soft targets.
        mixup_alpha: Beta(alpha, alpha) parameter of MixUp; 0 disables it.
        cutmix_alpha: Beta(alpha, alpha) parameter of CutMix; 0 disables it.
        prob: probability that a batch is mixed; the other batches get plain one-hot targets.
    """

    def __init__(
        self, num_classes: int, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup/cutmix alphas must be >= 0 (0 disables), got {mixup_alpha} and {cutmix_alpha}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob is a probability in [0, 1], got {prob}")
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        mixes: list[v2.Transform] = []
        if mixup_alpha > 0:
            mixes.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            mixes.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self._mix: v2.Transform | None = None
        if len(mixes) == 1:
            self._mix = mixes[0]
        elif mixes:
            self._mix = v2.RandomChoice(mixes)

    @property
    def enabled(self) -> bool:
        return self._mix is not None

    def __call__(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Mix a batch.

        Args:
            images: ``(B, C, H, W)`` float images.
            targets: ``(B,)`` class indices.

        Returns:
            ``(images, soft_targets)`` with soft targets of shape ``(B, num_classes)``, float, rows summing to 1. A
            batch of one is never mixed (MixUp pairs each sample with another).
        """
        if images.ndim != 4 or targets.ndim != 1 or images.shape[0] != targets.shape[0]:
            raise ValueError(
                f"expected images (B, C, H, W) and targets (B,), got {tuple(images.shape)} and {tuple(targets.shape)}"
            )
        if self._mix is None or images.shape[0] < 2 or self.prob == 0.0:
            return images, F.one_hot(targets, self.num_classes).float()
        if self.prob < 1.0 and torch.rand(()).item() >= self.prob:
            return images, F.one_hot(targets, self.num_classes).float()
        return self._mix(images, targets)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, mixup_alpha={self.mixup_alpha}, "
            f"cutmix_alpha={self.cutmix_alpha}, prob={self.prob})"
        )


class SeededDataset(Dataset):
    """Makes the random augmentation of sample ``i`` in epoch ``e`` a function of ``(seed, e, i)`` only.

    Each ``dataset[i]`` runs with torch's CPU generator (and Python's ``random``, for custom transforms; the v2
    transforms use only torch) seeded from a hash of ``(seed, epoch, i)``, restoring both afterwards, so the result
    is the same whatever the number of DataLoader workers or the access order, and the caller's RNG is untouched.
    When the dataset's ``transform`` draws only from a ``torch.Generator`` of its own (its ``generator`` attribute,
    e.g. :class:`~botnet.data.tensor_augment.TensorTrainAugment`), that generator is seeded instead and the global
    random state is left alone. CUDA generators are neither seeded nor touched. Worker processes hold a copy of this
    dataset made when they start: with ``persistent_workers=True`` give the epoch in the key, ``dataset[(epoch, i)]``
    (:class:`~botnet.engine.data.EpochSampler` does), as a later :meth:`set_epoch` does not reach them.

    Args:
        dataset: map-style dataset whose ``__getitem__`` draws its randomness from torch (or ``random``).
        seed: run seed.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def sample_seed(self, index: int, epoch: int | None = None) -> int:
        """The 63-bit seed of sample ``index`` in ``epoch`` (default: the current epoch)."""
        key = f"{self.seed},{self.epoch if epoch is None else int(epoch)},{int(index)}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        """Sample ``key``: an index (of the epoch set by :meth:`set_epoch`) or an ``(epoch, index)`` pair."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        seed = self.sample_seed(index, epoch)
        own = getattr(getattr(self.dataset, "transform", None), "generator", None)
        if isinstance(own, torch.Generator):  # a transform that draws only from its own generator
            own.manual_seed(seed)
            return self.dataset[index]
        py_state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would reseed CUDA too
                random.seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(py_state)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes  # type: ignore[attr-defined]
