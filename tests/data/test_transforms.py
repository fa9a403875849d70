"""Train / eval transforms, batch MixUp / CutMix and per-sample seeded augmentation."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from botnet.data.transforms import (
    BatchMix,
    SeededDataset,
    build_eval_transform,
    build_train_transform,
    parse_randaugment,
)
from botnet.models.botnet import IMAGENET_MEAN, IMAGENET_STD


def _pil(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def _check_output(out: torch.Tensor, hw: tuple[int, int]) -> None:
    assert type(out) is torch.Tensor  # a plain tensor, not a tv_tensors.Image
    assert out.dtype == torch.float32
    assert out.shape == (3, *hw)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("img_size, hw", [(32, (32, 32)), ((24, 40), (24, 40))])
@pytest.mark.parametrize("randaugment", [None, "rand-m9-n2"])
@pytest.mark.parametrize("src_wh", [(20, 50), (1, 1), (300, 200)])
def test_train_transform_shape_and_dtype(img_size, hw, randaugment, src_wh) -> None:
    tf = build_train_transform(img_size, randaugment=randaugment)
    img = _pil(*src_wh)
    _check_output(tf(img), hw)
    _check_output(tf(TF.pil_to_tensor(img)), hw)  # uint8 (3, H, W) tensor input


def test_train_transform_without_flip_or_randaugment_has_no_such_steps() -> None:
    names = [type(t).__name__ for t in build_train_transform(32, hflip=0.0).transforms]
    assert names[:2] == ["RandomResizedCrop", "ToImage"]
    names = [type(t).__name__ for t in build_train_transform(32, randaugment="rand-m5").transforms]
    assert names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "RandAugment"]


def test_parse_randaugment() -> None:
    assert parse_randaugment("rand-m9-n2") == (9, 2)
    assert parse_randaugment("rand-n3-m7") == (7, 3)
    assert parse_randaugment("rand") == (10, 2)
    for bad in ["rand-m9-mstd0.5", "augmix-m9", "rand-m11", "rand-n0", "rand-x1", "rand-m"]:
        with pytest.raises(ValueError, match="rand"):
            parse_randaugment(bad)
    with pytest.raises(ValueError, match="m<int>"):
        build_train_transform(32, randaugment="rand-m9-inc1")


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="interpolation"):
        build_train_transform(32, interpolation="cubic")
    with pytest.raises(ValueError, match="img_size"):
        build_eval_transform((32, 0))
    with pytest.raises(ValueError, match="hflip"):
        build_train_transform(32, hflip=1.5)
    for crop_pct in [0.0, 1.2, float("nan")]:
        with pytest.raises(ValueError, match="crop_pct"):
            build_eval_transform(32, crop_pct=crop_pct)


def _manual_eval(img: Image.Image, resize_hw: list[int], crop_hw: list[int]) -> torch.Tensor:
    x = TF.resize(TF.pil_to_tensor(img), resize_hw, antialias=True)
    x = TF.center_crop(x, crop_hw).float() / 255
    return TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))


def test_eval_transform_resizes_as_specified_and_is_deterministic() -> None:
    img = _pil(20, 50)  # W=20, H=50
    tf = build_eval_transform(32, crop_pct=0.875)
    out = tf(img)
    _check_output(out, (32, 32))
    assert torch.equal(out, tf(img))
    # shorter side (W=20) -> floor(32 / 0.875) = 36, longer side 50 * 36 / 20 = 90
    expected = _manual_eval(img, [90, 36], [32, 32])
    torch.testing.assert_close(out, expected, atol=2e-2, rtol=0)  # PIL vs tensor resize kernels differ slightly
    assert not torch.allclose(out, _manual_eval(img, [89, 36], [32, 32]), atol=2e-2, rtol=0)

    # (height, width) sizes scale both sides: (24, 40) / 0.8 -> (30, 50)
    tf = build_eval_transform((24, 40), crop_pct=0.8)
    tensor_img = TF.pil_to_tensor(_pil(64, 48, seed=1))
    out = tf(tensor_img)
    _check_output(out, (24, 40))
    torch.testing.assert_close(out, _manual_eval(_pil(64, 48, seed=1), [30, 50], [24, 40]))


def test_eval_transform_of_tiny_image() -> None:
    _check_output(build_eval_transform(32, crop_pct=1.0)(_pil(1, 3)), (32, 32))


def _batch(b: int = 8, num_classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, 16, 16, generator=g), torch.randint(0, num_classes, (b,), generator=g)


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_batch_mix_gives_soft_targets(mixup: float, cutmix: float) -> None:
    images, targets = _batch()
    mix = BatchMix(5, mixup_alpha=mixup, cutmix_alpha=cutmix)
    assert mix.enabled
    torch.manual_seed(0)
    mixed, soft = mix(images, targets)
    assert mixed.shape == images.shape and soft.shape == (8, 5) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    assert not torch.equal(soft, torch.nn.functional.one_hot(targets, 5).float())

    torch.manual_seed(0)
    mixed2, soft2 = mix(images, targets)
    assert torch.equal(mixed, mixed2) and torch.equal(soft, soft2)


def test_batch_mix_off_or_prob_zero_or_single_sample_is_one_hot() -> None:
    images, targets = _batch()
    one_hot = torch.eye(5)[targets]
    for mix in [BatchMix(5), BatchMix(5, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.0)]:
        out, soft = mix(images, targets)
        assert out is images and torch.equal(soft, one_hot)
    assert not BatchMix(5).enabled
    out, soft = BatchMix(5, mixup_alpha=0.8)(images[:1], targets[:1])
    assert out is images[:1] or torch.equal(out, images[:1])
    assert torch.equal(soft, one_hot[:1])


def test_batch_mix_prob_mixes_some_batches() -> None:
    images, targets = _batch()
    mix = BatchMix(5, mixup_alpha=1.0, prob=0.5)
    torch.manual_seed(0)
    mixed = [not torch.equal(mix(images, targets)[1], torch.eye(5)[targets]) for _ in range(40)]
    assert 5 < sum(mixed) < 35
    torch.manual_seed(0)
    assert mixed == [not torch.equal(mix(images, targets)[1], torch.eye(5)[targets]) for _ in range(40)]


class _AugmentedImages(Dataset):
    """A few fixed images through the train transform, plus a draw from Python's ``random``."""

    classes = ["a", "b"]

    def __init__(self) -> None:
        self.images = [TF.pil_to_tensor(_pil(40, 30, seed=i)) for i in range(6)]
        self.tf = build_train_transform(16, randaugment="rand-m9-n2")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, float]:
        return self.tf(self.images[i]), random.random()


def _same(a: tuple[torch.Tensor, float], b: tuple[torch.Tensor, float]) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1]


def test_seeded_dataset_is_a_function_of_seed_epoch_index() -> None:
    ds = SeededDataset(_AugmentedImages(), seed=3)
    assert len(ds) == 6 and ds.classes == ["a", "b"]
    forward = [ds[i] for i in range(6)]
    backward = [ds[i] for i in reversed(range(6))][::-1]
    assert all(_same(f, b) for f, b in zip(forward, backward, strict=True))
    assert not _same(forward[0], forward[1])

    ds.set_epoch(1)
    assert not any(_same(ds[i], forward[i]) for i in range(6))
    ds.set_epoch(0)
    assert _same(ds[4], forward[4])
    assert not _same(SeededDataset(_AugmentedImages(), seed=4)[4], forward[4])


def test_seeded_dataset_leaves_the_global_rng_alone() -> None:
    ds = SeededDataset(_AugmentedImages(), seed=0)
    torch.manual_seed(123)
    random.seed(123)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    ds[0]
    ds[1]
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state


def test_seeded_dataset_is_independent_of_worker_count() -> None:
    ds = SeededDataset(_AugmentedImages(), seed=7)
    ds.set_epoch(2)
    single = torch.cat([x for x, _ in DataLoader(ds, batch_size=2, num_workers=0)])
    multi = torch.cat([x for x, _ in DataLoader(ds, batch_size=2, num_workers=2)])
    assert torch.equal(single, multi)
