"""Training input pipeline on real JPEG photos: ours against torchvision's ImageFolder and timm's loader, same files.

The folder
    ``make_folder`` writes ``DIR/train/<class>/*.jpg``: ``--images`` JPEGs (quality 90) of 300-500 px on the long
    side, each a random crop (30-100% of the area), rescale and flip of a real photograph shipped with matplotlib
    (``grace_hopper.jpg``, a 512x600 portrait photo, and ``Minduka_Present_Blue_Pack.png``, a product photo), with a
    random brightness change so that no two files are alike. Four classes.

What is measured
    One pass over the files, training-style: decode, RandomResizedCrop to 224 (ImageNet's scale and ratio), random
    horizontal flip, float conversion, normalisation, batches of 64 -- in the main process (``num_workers=0``) with
    one torch thread, so img/s is per core. Pipelines:

    * ``ours``: as ``botnet train`` runs on a folder: :class:`botnet.data.ImageFolderDataset` with ``tensors=True``
      (JPEGs decoded by TorchCodec into uint8 tensors) + :class:`~botnet.data.tensor_augment.TensorTrainAugment`
      under ``SeededDataset`` through ``botnet.engine.data.train_loader``, uint8 crops normalised per batch as the
      trainer does;
    * ``ours (PIL + v2)``: the former path, PIL images through ``build_train_transform`` (the v2 pipeline);
    * ``torchvision``: ``torchvision.datasets.ImageFolder`` + the v2 transforms, a plain ``DataLoader``;
    * ``timm``: ``timm.data.create_dataset`` + ``create_loader`` (no colour jitter, no prefetcher: the same work).

    Pipelines are interleaved across repeats; the ratio is ours / the reference in the same repeat (the median over
    repeats).

How to run
    uv run --locked python benchmarks/jpeg_pipeline.py [--images 2048] [--repeats 3]   # about 2 min on 2 cores
    (``benchmarks/train_speed.py`` runs it too, after its training cases.)
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import torch
import torchvision
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from botnet.data import ImageFolderDataset, build_train_transform
from botnet.data.tensor_augment import TensorTrainAugment, normalize_batch
from botnet.engine.data import train_loader
from botnet.engine.distributed import DistInfo

SIZE, BATCH = 224, 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SOURCES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def make_folder(root: Path, images: int, seed: int = 0) -> Path:
    """Write ``images`` JPEGs of real photos under ``root/train/<class>/``; returns ``root``."""
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [Image.open(sample_data / name).convert("RGB") for name in SOURCES]
    rng = np.random.default_rng(seed)
    for i in range(images):
        photo = photos[i % len(photos)]
        w, h = photo.size
        frac = rng.uniform(0.3, 1.0)
        cw, ch = max(int(w * np.sqrt(frac)), 16), max(int(h * np.sqrt(frac)), 16)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = photo.crop((x, y, x + cw, y + ch))
        long_side = int(rng.integers(300, 501))
        scale = long_side / max(cw, ch)
        crop = crop.resize((max(round(cw * scale), 1), max(round(ch * scale), 1)), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.3))
        out = root / "train" / f"class{i % 4}"
        out.mkdir(parents=True, exist_ok=True)
        crop.save(out / f"{i:05d}.jpg", quality=90)
    return root


def _ours(root: Path, transform, tensors: bool) -> DataLoader:
    dataset = ImageFolderDataset(root, "train", transform, tensors=tensors)
    cfg = SimpleNamespace(seed=0, batch_size=BATCH, workers=0)
    return train_loader(dataset, cfg, DistInfo(0, 1, 0, torch.device("cpu")), epoch=0)


class _NormalizedBatches:
    """uint8 batches of a loader normalised as the trainer normalises them (``normalize_batch``)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self):
        for images, targets, bad in self.loader:
            yield normalize_batch(images, MEAN, STD), targets, bad


def build_pipelines(root: Path) -> dict[str, DataLoader]:
    import timm.data

    v2_train = v2.Compose(
        [
            v2.RandomResizedCrop(SIZE, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(MEAN), list(STD)),
        ]
    )
    tv = torchvision.datasets.ImageFolder(str(root / "train"), transform=v2_train)
    timm_ds = timm.data.create_dataset("", root=str(root), split="train", is_training=True)
    timm_loader = timm.data.create_loader(
        timm_ds,
        input_size=(3, SIZE, SIZE),
        batch_size=BATCH,
        is_training=True,
        color_jitter=0.0,
        num_workers=0,
        use_prefetcher=False,
        persistent_workers=False,
        device=torch.device("cpu"),
    )
    return {
        "ours": _NormalizedBatches(_ours(root, TensorTrainAugment(SIZE, normalize=False), tensors=True)),
        "ours (PIL + v2)": _ours(root, build_train_transform(SIZE, mean=MEAN, std=STD), tensors=False),
        "torchvision": DataLoader(tv, batch_size=BATCH, shuffle=True, drop_last=True),
        "timm": timm_loader,
    }


def _one_pass(loader) -> float:
    n, t0 = 0, time.perf_counter()
    for batch in loader:
        images = batch[0]
        assert images.shape[1:] == (3, SIZE, SIZE) and images.dtype == torch.float32
        n += images.shape[0]
    return n / (time.perf_counter() - t0)


def measure(root: Path, repeats: int, log=print) -> dict[str, list[float]]:
    """img/s (one core) of every pipeline per repeat, interleaved."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipelines = build_pipelines(root)
        results: dict[str, list[float]] = {name: [] for name in pipelines}
        for r in range(repeats):
            order = list(pipelines) if r % 2 == 0 else list(pipelines)[::-1]
            for name in order:
                results[name].append(_one_pass(pipelines[name]))
            log(f"[jpeg {r + 1}/{repeats}] " + "  ".join(f"{k}: {v[-1]:.1f}" for k, v in results.items()))
    finally:
        torch.set_num_threads(threads)
    return results


def summarize(results: dict[str, list[float]]) -> list[dict]:
    """Rows: pipeline, median img/s per core, and ratios to torchvision and timm (medians of per-repeat ratios)."""
    rows = []
    for name, rates in results.items():
        row = {"pipeline": name, "images_per_s_per_core": statistics.median(rates), "per_repeat": rates}
        for ref in ("torchvision", "timm"):
            row[f"ratio_to_{ref}"] = statistics.median(a / b for a, b in zip(rates, results[ref], strict=True))
        rows.append(row)
    return rows


def format_rows(rows: list[dict], images: int) -> str:
    lines = [f"JPEG pipeline, {images} photos of 300-500 px -> {SIZE} px crops, batch {BATCH}, 1 core:"]
    lines.append(f"{'pipeline':32s}{'img/s':>9s}{'/ tv':>8s}{'/ timm':>8s}")
    for r in rows:
        lines.append(
            f"{r['pipeline']:32s}{r['images_per_s_per_core']:9.1f}{r['ratio_to_torchvision']:8.3f}"
            f"{r['ratio_to_timm']:8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2048, help="photos in the folder (at least one batch)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes over the folder per pipeline")
    args = parser.parse_args(argv)
    if args.images < BATCH or args.repeats < 1:
        parser.error(f"--images must be at least {BATCH} (one batch) and --repeats at least 1")
    with tempfile.TemporaryDirectory(prefix="jpeg-") as tmp:
        results = measure(make_folder(Path(tmp), args.images), args.repeats)
    print(format_rows(summarize(results), args.images))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
