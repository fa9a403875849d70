"""The built-in dataset: coloured shapes on textured backgrounds, drawn procedurally, 10 classes.

Every image is a pure function of ``(seed, split, index)``, so the dataset needs no download, no cache and no
disk, and is the same on every machine and in every process of a distributed run.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset

SHAPE_CLASSES = (
    "circle",
    "triangle",
    "square",
    "hexagon",
    "star",
    "cross",
    "ring",
    "crescent",
    "semicircle",
    "arrow",
)
SPLITS = {"train": 8000, "val": 1000}
_SUPERSAMPLE = 3  # draw at 3x and downsample: anti-aliased edges


def _polygon(n: int, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / n
    return [(cx + r * math.cos(angle + step * k), cy + r * math.sin(angle + step * k)) for k in range(n)]


def _unit(k: int) -> tuple[int, int]:
    return ((1, 0), (0, 1), (-1, 0), (0, -1))[k]


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    """The vertices ``_draw_shape`` fills for a polygonal ``kind``, or None for shapes drawn from ellipses."""
    if kind == "triangle":
        return _polygon(3, cx, cy, r, angle)
    if kind == "square":
        return _polygon(4, cx, cy, r, angle)
    if kind == "hexagon":
        return _polygon(6, cx, cy, r, angle)
    if kind == "star":
        outer = _polygon(5, cx, cy, r, angle)
        inner = _polygon(5, cx, cy, 0.42 * r, angle + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if kind == "cross":
        a, b = 0.3 * r, r
        quarter = [(-a, -b), (a, -b), (a, -a)]  # one arm, rotated four times
        arm = [(x * c - y * s, x * s + y * c) for k in range(4) for c, s in [_unit(k)] for x, y in quarter]
        return _rotated(arm, cx, cy, angle)
    if kind == "arrow":
        w, h = 0.25 * r, 0.55 * r
        arrow = [(-r, -w), (0.2 * r, -w), (0.2 * r, -h), (r, 0), (0.2 * r, h), (0.2 * r, w), (-r, w)]
        return _rotated(arrow, cx, cy, angle)
    return None


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float) -> None:
    """Draw the mask (255 inside) of one shape of radius ``r`` centred at (cx, cy), rotated by ``angle`` (radians)."""
    on, off = 255, 0
    vertices = _shape_polygon(kind, cx, cy, r, angle)
    if vertices is not None:
        draw.polygon(vertices, fill=on)
    elif kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=on)
    elif kind == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=on)
        q = 0.55 * r
        draw.ellipse((cx - q, cy - q, cx + q, cy + q), fill=off)
    elif kind == "crescent":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=on)
        ox, oy = cx + 0.5 * r * math.cos(angle), cy + 0.5 * r * math.sin(angle)
        q = 0.85 * r
        draw.ellipse((ox - q, oy - q, ox + q, oy + q), fill=off)
    elif kind == "semicircle":
        deg = math.degrees(angle)
        draw.pieslice((cx - r, cy - r, cx + r, cy + r), deg, deg + 180, fill=on)
    else:  # pragma: no cover - SHAPE_CLASSES is closed
        raise AssertionError(kind)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background: a colour gradient plus stripes or a checkerboard plus noise, uint8 (size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * math.pi)
    t = (np.cos(theta) * xx + np.sin(theta) * yy)[..., None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 * (1 - t) + c1 * t
    pattern = rng.integers(3)
    freq = rng.uniform(3, 10)
    if pattern == 0:
        phi = rng.uniform(0, 2 * math.pi)
        img += 30 * np.sin(2 * math.pi * freq * (np.cos(phi) * xx + np.sin(phi) * yy))[..., None]
    elif pattern == 1:
        img += 25 * (((xx * freq).astype(int) + (yy * freq).astype(int)) % 2 * 2 - 1)[..., None]
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_shape_image(seed: int, split: str, index: int, size: int = 64) -> tuple[Image.Image, int]:
    """The ``index``-th image of ``split``: an RGB PIL image of ``size`` x ``size`` and its class index."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), index])
    label = int(index % len(SHAPE_CLASSES))  # balanced classes
    bg = _texture(rng, size)
    # The shape's colour differs from the mean background colour by more than 100 in some channel.
    mean_bg = bg.reshape(-1, 3).mean(0)
    fill = rng.integers(0, 256, 3)
    while np.abs(fill - mean_bg).max() <= 100:
        fill = rng.integers(0, 256, 3)
    s = size * _SUPERSAMPLE
    mask = Image.new("L", (s, s), 0)
    r = rng.uniform(0.22, 0.42) * s
    cx, cy = rng.uniform(r + 0.04 * s, s - r - 0.04 * s, 2)
    _draw_shape(ImageDraw.Draw(mask), SHAPE_CLASSES[label], cx, cy, r, rng.uniform(0, 2 * math.pi))
    mask = mask.resize((size, size), Image.Resampling.BOX)
    fg = Image.new("RGB", (size, size), tuple(int(v) for v in fill))
    return Image.composite(fg, Image.fromarray(bg), mask), label


class ShapesDataset(Dataset):
    """Procedural 10-class shapes dataset; ``dataset[i]`` is ``(transform(PIL image), class index)``.

    Args:
        split: "train" (8000 images) or "val" (1000 images, disjoint: drawn from another random stream).
        transform: applied to the PIL image.
        size: image side in pixels.
        length: number of images (defaults to the split's size above).
        seed: changes every image.
    """

    classes = list(SHAPE_CLASSES)

    def __init__(self, split: str, transform=None, *, size: int = 64, length: int | None = None, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} of the built-in shapes dataset; expected one of {list(SPLITS)}")
        if size < 8:
            raise ValueError(f"shapes images need a size of at least 8 px, got {size}")
        self.split, self.transform, self.size, self.seed = split, transform, size, seed
        self.length = SPLITS[split] if length is None else int(length)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.targets = [i % len(SHAPE_CLASSES) for i in range(self.length)]

        self._cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} images")
        if self._cache is not None:
            img = self._cache[index]  # (3, size, size) uint8, a plain tensor: v2 transforms take it as the image
        else:
            img = render_shape_image(self.seed, self.split, index, self.size)[0]
        label = self.targets[index]
        return (self.transform(img) if self.transform is not None else img), label

    def preload(self, workers: int = 0) -> ShapesDataset:
        """Draw every image once into memory (uint8, 12 KiB each at 64 px), using ``workers`` processes."""
        plain = ShapesDataset(self.split, size=self.size, length=self.length, seed=self.seed)
        plain.transform = _pil_to_chw
        loader = DataLoader(plain, batch_size=256, num_workers=workers)
        self._cache = torch.cat([images for images, _ in loader])  # (N, 3, size, size)
        return self


def _pil_to_chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()
