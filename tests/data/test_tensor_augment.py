"""The tensor train augmentation: the same pixels as the transforms.v2 pipeline it replaces, and its seeding."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from botnet.data.folder import collate_skip_bad
from botnet.data.shapes import ShapesDataset
from botnet.data.tensor_augment import PendingCrop, TensorTrainAugment, crop_params, normalize_batch, render_crops
from botnet.data.transforms import SeededDataset, build_train_transform
from botnet.models.botnet import IMAGENET_MEAN, IMAGENET_STD


class _Images(Dataset):
    """uint8 (3, H, W) images of assorted sizes through ``transform``."""

    def __init__(self, transform, sizes=((40, 30), (64, 64), (17, 90), (200, 150))) -> None:
        rng = np.random.default_rng(0)
        self.images = [torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8)) for h, w in sizes * 4]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), i


SOURCES = ((64, 64), (64, 64), (80, 60), (64, 64))  # sizes of the sources: crops of equal size share a resize
SETTINGS = [
    dict(img_size=64, scale=(0.8, 1.0), ratio=(1.0, 1.0)),  # the built-in dataset's recipe
    dict(img_size=32),  # ImageNet's scale and ratio, downscaling
    dict(img_size=(24, 40), scale=(0.3, 0.6), ratio=(0.5, 2.0), hflip=0.3, interpolation="bicubic"),
    dict(img_size=48, scale=(0.9, 1.0), ratio=(3.0, 4.0), hflip=1.0),  # every try misses: the center fallback
    dict(img_size=16, hflip=0.0),
]


@pytest.mark.parametrize("kw", SETTINGS)
def test_same_pixels_as_the_v2_pipeline(kw) -> None:
    """Seeded per sample, the tensor path and build_train_transform give bit-identical images."""
    kw = dict(kw)
    img_size = kw.pop("img_size")
    reference = SeededDataset(_Images(build_train_transform(img_size, **kw)), seed=11)
    ours = SeededDataset(_Images(TensorTrainAugment(img_size, **kw)), seed=11)
    for epoch in (0, 3):
        reference.set_epoch(epoch)
        ours.set_epoch(epoch)
        for i in range(len(ours)):
            expected, got = reference[i][0], ours[i][0]
            assert type(got) is torch.Tensor and got.dtype == torch.float32
            assert torch.equal(got, expected), (kw, epoch, i)


def test_deferred_normalisation_gives_the_same_numbers() -> None:
    full = SeededDataset(_Images(TensorTrainAugment(32)), seed=2)
    raw = SeededDataset(_Images(TensorTrainAugment(32, normalize=False)), seed=2)
    crops = torch.stack([raw[i][0] for i in range(len(raw))])
    assert crops.dtype == torch.uint8
    assert torch.equal(normalize_batch(crops, IMAGENET_MEAN, IMAGENET_STD), torch.stack([x for x, _ in full]))


@pytest.mark.parametrize("kw", SETTINGS)
def test_crops_made_per_batch_are_the_crops_made_one_by_one(kw) -> None:
    """defer=True: the same draws, and render_crops (one resize per crop size, through the collate function) gives the
    per-sample pixels bit for bit, in batch order, with repeated crop sizes batched together."""
    kw = dict(kw)
    img_size = kw.pop("img_size")
    one_by_one = SeededDataset(_Images(TensorTrainAugment(img_size, normalize=False, **kw), sizes=SOURCES), seed=4)
    deferred = SeededDataset(_Images(TensorTrainAugment(img_size, defer=True, **kw), sizes=SOURCES), seed=4)
    items = [deferred[i] for i in range(len(deferred))]
    assert all(isinstance(x, PendingCrop) for x, _ in items)
    images, targets, bad = collate_skip_bad(items)
    assert images.dtype == torch.uint8 and not bad and targets.tolist() == list(range(len(items)))
    assert torch.equal(images, torch.stack([one_by_one[i][0] for i in range(len(one_by_one))]))
    sides = [x.box[2:] for x, _ in items]
    if kw.get("scale") == (0.8, 1.0):  # the built-in recipe: crop sizes repeat, so some resize calls are batched
        assert len(set(sides)) < len(sides)


def test_render_crops_refuses_a_mix_of_output_sizes() -> None:
    img = torch.zeros(3, 10, 10, dtype=torch.uint8)
    mode = v2.InterpolationMode.BILINEAR
    crops = [PendingCrop(img, (0, 0, 5, 5), False, (4, 4), mode), PendingCrop(img, (0, 0, 5, 5), False, (6, 6), mode)]
    with pytest.raises(ValueError, match="one output size"):
        render_crops(crops)


def test_crop_params_match_random_resized_crop() -> None:
    """The same draws as v2.RandomResizedCrop from the same generator state, including the fallback."""
    for (h, w), scale, ratio in [((50, 80), (0.08, 1.0), (3 / 4, 4 / 3)), ((30, 30), (0.95, 1.0), (5.0, 6.0))]:
        rrc = v2.RandomResizedCrop(8, scale=scale, ratio=ratio)
        gen = torch.Generator()
        for seed in range(50):
            torch.manual_seed(seed)
            expected = rrc.make_params([torch.zeros(3, h, w)])
            gen.manual_seed(seed)
            top, left, ch, cw = crop_params(h, w, scale, ratio, gen)
            assert dict(top=top, left=left, height=ch, width=cw) == expected


def test_crop_and_flip_statistics() -> None:
    """Over many samples: crop area and aspect distributed as v2.RandomResizedCrop's own draws (an independent
    stream of the global generator; the rejection of crops that do not fit shifts both from the plain uniforms), and
    the flip rate is ``p``."""
    scale, ratio, n = (0.2, 0.7), (0.5, 2.0), 4000
    gen = torch.Generator().manual_seed(0)
    ours = [crop_params(400, 300, scale, ratio, gen) for _ in range(n)]
    rrc = v2.RandomResizedCrop(8, scale=scale, ratio=ratio)
    torch.manual_seed(12345)
    theirs = [tuple(rrc.make_params([torch.zeros(3, 400, 300)]).values()) for _ in range(n)]
    for crops in (ours, theirs):
        assert all(top >= 0 and left >= 0 and top + h <= 400 and left + w <= 300 for top, left, h, w in crops)
    stats = []
    for crops in (ours, theirs):
        area = np.array([h * w / (400 * 300) for _, _, h, w in crops])
        log_aspect = np.array([math.log(w / h) for _, _, h, w in crops])
        top = np.array([t / (400 - h) if h < 400 else 0.5 for t, _, h, _ in crops])
        stats.append((area, log_aspect, top))
    for a, b in zip(*stats, strict=True):
        assert abs(a.mean() - b.mean()) < 4 * math.sqrt((a.var() + b.var()) / n)
        assert abs(a.std() - b.std()) < 0.05 * b.std()
    area = stats[0][0]
    assert area.min() > 0.19 and area.max() < 0.71

    aug = TensorTrainAugment(8, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.3, normalize=False)
    img = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8).expand(3, 8, 8).contiguous()
    aug.generator.manual_seed(1)
    flipped = [bool(torch.equal(aug(img), img.flip(-1))) for _ in range(n)]
    assert abs(sum(flipped) / n - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)


def test_same_sample_same_pixels_whatever_the_batch() -> None:
    """(seed, epoch, index) fixes a sample's pixels: batch size, order, composition and workers do not matter."""
    base = ShapesDataset("train", TensorTrainAugment(32, scale=(0.5, 1.0)), size=32, length=24, seed=0).preload()
    ds = SeededDataset(base, seed=5)
    ds.set_epoch(1)
    by_index = {i: ds[i][0] for i in range(len(ds))}
    order = list(range(len(ds)))
    random.Random(0).shuffle(order)
    for batch_size, workers in [(5, 0), (8, 2)]:
        loader = DataLoader(ds, batch_size=batch_size, sampler=order, num_workers=workers)
        got = torch.cat([x for x, _ in loader])
        assert torch.equal(got, torch.stack([by_index[i] for i in order]))
    ds.set_epoch(2)
    assert not torch.equal(ds[3][0], by_index[3])
    other = SeededDataset(base, seed=6)
    other.set_epoch(1)
    assert not torch.equal(other[3][0], by_index[3])


def test_global_random_state_is_neither_used_nor_touched() -> None:
    ds = SeededDataset(_Images(TensorTrainAugment(24)), seed=0)
    torch.manual_seed(1)
    random.seed(1)
    state, py_state = torch.get_rng_state(), random.getstate()
    first = ds[2][0]
    assert torch.equal(torch.get_rng_state(), state) and random.getstate() == py_state
    torch.manual_seed(99)
    assert torch.equal(ds[2][0], first)


def test_bad_input_and_options_are_refused() -> None:
    aug = TensorTrainAugment(8)
    with pytest.raises(TypeError, match="uint8"):
        aug(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="uint8"):
        aug([1, 2])
    with pytest.raises(ValueError, match="scale"):
        TensorTrainAugment(8, scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="hflip"):
        TensorTrainAugment(8, hflip=2.0)
    with pytest.raises(ValueError, match="interpolation"):
        TensorTrainAugment(8, interpolation="cubic")
