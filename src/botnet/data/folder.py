"""Image-folder classification dataset (``DIR/<split>/<class>/*.jpg``) that survives unreadable images.

The layout and file order are torchvision's (``find_classes``, ``IMG_EXTENSIONS``, ``make_dataset``'s order); the walk
(:func:`~botnet.data.scan.scan_class_folders`) follows each link once, never loops and keeps a file reached twice
once, under its first class. This module adds clear errors for a badly laid-out dataset, decoding of every PIL mode
to RGB, and a :class:`BadSample` in place of a crash for a file that cannot be decoded or is not a regular file (a
FIFO, socket or device is never opened), so a training loop can skip it (:func:`collate_skip_bad`) and stop only
when too many are bad (:class:`BadImageTracker`).
"""

from __future__ import annotations

import copy
import functools
import io
import os
import re
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageFile
from torch import Tensor
from torch.utils.data import Dataset, default_collate
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension
from torchvision.transforms.v2 import functional as TF

from .scan import NotRegularFile, check_regular, open_regular, scan_class_folders
from .tensor_augment import PendingCrop, render_crops

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's default Image.MAX_IMAGE_PIXELS
_LAYOUT = "DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

# What PIL raises for files it cannot decode: UnidentifiedImageError is an OSError, truncated data an OSError,
# broken chunks a SyntaxError, odd headers ValueError / EOFError / struct.error / IndexError.
UNREADABLE_IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


class DataError(ValueError):
    """A dataset on disk is missing, badly laid out or has too many unreadable images."""


class BadSample(NamedTuple):
    """An image file that cannot be read, and why: what a dataset returns in place of ``(image, target)``, and what
    prediction reports for a file it could not predict."""

    path: str
    reason: str


def load_rgb(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, fully decode and convert an image file to RGB.

    Only a regular file is opened (:func:`~botnet.data.scan.open_regular`): a FIFO, socket or device is an
    ``OSError`` (:class:`~botnet.data.scan.NotRegularFile`) before anything opens it. Alpha is dropped (as in
    ``Image.convert("RGB")``); palette images with transparency go through RGBA. Integer gray modes wider than 8 bits
    (``I;16*``, and ``I``, 32-bit, which older Pillow also uses for 16-bit PNGs) are converted by the range their
    values actually use (:func:`_wide_gray_to_8bit`). ``F`` follows Pillow's own conversion (values clipped to
    0..255).

    Args:
        path: image file.
        max_pixels: refuse images with more than this many pixels (width * height), checked from the header before
            any decoding. ``None`` removes this limit; PIL's own ``Image.MAX_IMAGE_PIXELS`` still applies, and its
            ``DecompressionBombWarning`` is raised as an error here.

    Raises:
        PIL.Image.DecompressionBombError: the image has too many pixels.
        OSError, SyntaxError, ValueError, ...: the file is not a decodable image (zero bytes, truncated, not an
            image); :data:`UNREADABLE_IMAGE_ERRORS` lists what to catch. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is
            left as it is, so truncated files fail unless the caller enabled it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with open_regular(path) as fh, _open_image(fh) as img:
                _check_pixels(img, max_pixels)
                img.load()
                return _to_rgb(img)
        except Image.DecompressionBombWarning as e:
            raise Image.DecompressionBombError(str(e)) from None


def read_rgb(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Tensor:
    """:func:`load_rgb` as a uint8 ``(3, H, W)`` tensor, the same pixels. JPEGs in RGB or gray (baseline and
    progressive) are decoded by TorchCodec's ``decode_jpeg``, the same libjpeg-turbo decoding as PIL's without a PIL
    image and its copies in between; every other file, or every file when TorchCodec cannot be loaded, by
    :func:`load_rgb`. Raises what :func:`load_rgb` raises."""
    decode = _jpeg_decoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with open_regular(path) as fh:
                data = bytearray(fh.read())
            if not data:
                raise Image.UnidentifiedImageError("the file is empty (0 bytes)")
            with _open_image(io.BytesIO(data)) as img:  # reads the header only
                _check_pixels(img, max_pixels)
                pil = img.format != "JPEG" or img.mode not in ("RGB", "L") or ImageFile.LOAD_TRUNCATED_IMAGES
                if decode is None or pil:
                    img.load()
                    return TF.pil_to_tensor(_to_rgb(img))
        except Image.DecompressionBombWarning as e:
            raise Image.DecompressionBombError(str(e)) from None
    try:
        return decode(torch.frombuffer(data, dtype=torch.uint8), mode="RGB")  # (3, H, W) uint8
    except RuntimeError as e:  # a truncated or corrupt file: an unreadable image, as PIL's OSError says
        reason = re.sub(r"^.*\.cpp:\d+,\s*", "", str(e).splitlines()[-1])  # without TorchCodec's source location
        raise OSError(f"cannot decode JPEG: {reason}") from None


def _open_image(fp: BinaryIO) -> Image.Image:
    """``Image.open(fp)``; a file of no type Pillow knows is an ``UnidentifiedImageError`` that says so, without
    PIL's ``<_io.BytesIO object at 0x...>`` in place of a name (the caller names the file)."""
    try:
        return Image.open(fp)
    except Image.UnidentifiedImageError:
        raise Image.UnidentifiedImageError(
            "cannot identify image file (not an image, or a format Pillow cannot read)"
        ) from None


@functools.cache
def _jpeg_decoder() -> Callable[..., Tensor] | None:
    """TorchCodec's ``decode_jpeg``, or None where its native library does not load (a torch it was not built for)."""
    try:
        from torchcodec.decoders import decode_jpeg
    except (ImportError, OSError, RuntimeError):
        return None
    return decode_jpeg


def _check_pixels(img: Image.Image, max_pixels: int | None) -> None:
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise Image.DecompressionBombError(
            f"image size {width}x{height} = {width * height} pixels is more than max_pixels={max_pixels}"
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """A new RGB image from a decoded image of any mode."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode in _SIXTEEN_BIT_MODES:
        gray = _wide_gray_to_8bit(np.asarray(img, dtype=np.float64))  # (H, W)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def _wide_gray_to_8bit(samples: np.ndarray) -> np.ndarray:
    """uint8 gray from integer samples of a 16- or 32-bit gray image, by the range the values actually use:

    - all in 0..255: 8-bit data stored in a wider mode (mode ``I`` from a NumPy uint8/int32 array, a TIFF written
      as 32-bit): kept as they are, so it does not come out nearly black;
    - all in 0..65535: 16-bit data, scaled 0..65535 -> 0..255 (a dark 16-bit image stays dark);
    - otherwise (negative or above 65535, only possible in 32-bit mode ``I``): stretched linearly from its own
      minimum..maximum to 0..255 (a constant image gives 0).
    """
    low, high = (float(samples.min()), float(samples.max())) if samples.size else (0.0, 0.0)
    if low >= 0 and high <= 255:
        scaled = samples
    elif low >= 0 and high <= 65535:
        scaled = samples / 257.0
    else:
        scaled = (samples - low) * (255.0 / (high - low)) if high > low else np.zeros_like(samples)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _is_visible_image(path: str) -> bool:
    return not os.path.basename(path).startswith(".") and has_file_allowed_extension(path, IMG_EXTENSIONS)


class ImageFolderDataset(Dataset):
    """Classification images laid out as ``root/<split>/<class>/**/<image>`` (torchvision's ImageFolder layout).

    Files with the extensions of torchvision's ``IMG_EXTENSIONS`` are collected, in nested folders too; hidden files
    and folders (names starting with ``.``, e.g. macOS ``._x.jpg``) are ignored. Links are followed once, a link
    loop is not entered, and a file reached twice is counted once, under the first class (in class order) that
    reaches it (:mod:`botnet.data.scan`). A file that cannot be decoded, or is not a regular file (a FIFO, socket or
    device, never opened), gives a :class:`BadSample` instead of a sample.

    Args:
        root: dataset folder holding one folder per split.
        split: split folder name, e.g. ``"train"`` or ``"val"``.
        transform: applied to the RGB PIL image, or with ``tensors`` to its uint8 ``(3, H, W)`` tensor.
        classes: the class names the split must have (those of the train split, when building val); their order
            sets the target indices. Default: the split's own class folders, sorted.
        max_pixels: passed to :func:`load_rgb`.
        tensors: decode to uint8 ``(3, H, W)`` tensors with :func:`read_rgb` (the same pixels, JPEGs faster, and
            torch's resize kernels in tensor transforms) instead of PIL images.

    Raises:
        DataError: the root or split is missing, has no class folders or empty class folders, or its classes differ
            from ``classes``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        classes: Sequence[str] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        tensors: bool = False,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.max_pixels = max_pixels
        self.tensors = tensors
        split_dir = _check_split_dir(self.root, split)

        found = _find_class_folders(split_dir)
        if classes is not None:
            _check_same_classes(split_dir, found, classes)
            found = list(classes)
        self.classes: list[str] = found
        self.class_to_idx: dict[str, int] = {name: i for i, name in enumerate(found)}

        skipped: Counter[str] = Counter()  # other files by extension: said in a note, never silently left out

        def is_image(path: str) -> bool:
            if _is_visible_image(path):
                return True
            name = os.path.basename(path)
            if not name.startswith("."):
                skipped[os.path.splitext(name)[1].lower() or "(no extension)"] += 1
            return False

        self.samples: list[tuple[str, int]] = scan_class_folders(split_dir, self.class_to_idx, is_image)
        self.skipped: dict[str, int] = dict(skipped.most_common())
        empty = sorted(set(self.classes) - {self.classes[target] for _, target in self.samples})
        if empty:
            raise DataError(
                f"{len(empty)} class folder(s) in {split_dir} contain no image files: {', '.join(empty)}. "
                f"Accepted extensions (any case): {', '.join(IMG_EXTENSIONS)}. Add images or remove these folders."
            )
        self.targets: list[int] = [target for _, target in self.samples]

    def skipped_note(self) -> str | None:
        """A line naming the files of the split that are not image types training reads, by extension, or ``None``."""
        if not self.skipped:
            return None
        counts = ", ".join(f"{suffix} {n}" for suffix, n in self.skipped.items())
        return (
            f"note: {self.root / self.split}: skipped {sum(self.skipped.values())} file(s) that are not image types "
            f"training reads ({counts}); it reads {', '.join(IMG_EXTENSIONS)} (any case): convert images of other "
            "types to use them"
        )

    def subset(
        self, indices: Sequence[int], transform: Callable[[Image.Image], Any] | None, split: str
    ) -> ImageFolderDataset:
        """The samples at ``indices`` as a dataset of their own (same classes), with ``transform``; ``split`` names
        it in messages (e.g. ``"train (held out)"``)."""
        view = copy.copy(self)
        view.samples = [self.samples[i] for i in indices]
        view.targets = [target for _, target in view.samples]
        view.transform, view.split = transform, split
        return view

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int] | BadSample:
        path, target = self.samples[index]
        try:
            img = (read_rgb if self.tensors else load_rgb)(path, max_pixels=self.max_pixels)
        except UNREADABLE_IMAGE_ERRORS as e:
            return BadSample(path, f"{type(e).__name__}: {e}")
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"{len(self.samples)} images, {len(self.classes)} classes)"
        )


def _check_split_dir(root: Path, split: str) -> Path:
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist; expected the layout {_LAYOUT}")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is a file, not a folder; expected the layout {_LAYOUT}")
    split_dir = root / split
    if not split_dir.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = f"found folders: {', '.join(present)}" if present else "it has no sub-folders"
        raise DataError(f"dataset folder {root} has no '{split}' split folder ({found}); expected the layout {_LAYOUT}")
    return split_dir


def _find_class_folders(split_dir: Path) -> list[str]:
    try:
        classes, _ = find_classes(str(split_dir))
    except FileNotFoundError:
        classes = []
    classes = [name for name in classes if not name.startswith(".")]
    if not classes:
        loose = sum(1 for p in split_dir.iterdir() if p.is_file() and _is_visible_image(p.name))
        hint = f" (it holds {loose} image files directly)" if loose else ""
        raise DataError(
            f"split folder {split_dir} has no class sub-folders{hint}; put each class's images in its own "
            f"sub-folder, as in {_LAYOUT}"
        )
    return classes


def _check_same_classes(split_dir: Path, found: Sequence[str], expected: Sequence[str]) -> None:
    if len(set(expected)) != len(expected):
        raise DataError(f"classes must be distinct names, got duplicates in {list(expected)}")
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing)}")
        if extra:
            parts.append(f"extra {len(extra)}: {', '.join(extra)}")
        raise DataError(
            f"class folders of {split_dir} differ from the {len(expected)} expected classes (those of the train "
            f"split): {'; '.join(parts)}. Every split needs the same class folders."
        )


def collate_skip_bad(batch: Sequence[tuple[Any, Any] | BadSample]) -> tuple[Tensor, Tensor, list[BadSample]]:
    """Collate ``(image, target)`` samples, dropping :class:`BadSample` items.

    Returns:
        ``(images, targets, bad)``: the good samples stacked with ``default_collate`` (crops left to the batch,
        :class:`~botnet.data.tensor_augment.PendingCrop`, made by ``render_crops``) and the dropped ones. When every
        item is bad, ``images`` and ``targets`` are empty tensors of shape ``(0,)``; skip such a batch.
    """
    bad = [item for item in batch if isinstance(item, BadSample)]
    good = [item for item in batch if not isinstance(item, BadSample)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    if isinstance(good[0][0], PendingCrop):
        return render_crops([image for image, _ in good]), default_collate([target for _, target in good]), bad
    images, targets = default_collate(good)
    return images, targets, bad


class BadImageTracker:
    """Counts unreadable images over a run and stops it when too many are bad.

    Args:
        keep: how many bad samples to remember for messages.
    """

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.seen = 0
        self.num_bad = 0
        self.examples: list[BadSample] = []

    @property
    def fraction(self) -> float:
        return self.num_bad / self.seen if self.seen else 0.0

    def update(self, n_seen: int, bad: Sequence[BadSample]) -> None:
        """Record a batch.

        Args:
            n_seen: samples attempted in the batch, the bad ones included (the batch size before dropping).
            bad: the samples that could not be read.
        """
        if n_seen < len(bad):
            raise ValueError(
                f"n_seen={n_seen} counts fewer samples than the {len(bad)} bad ones; pass the batch "
                "size before bad samples were dropped"
            )
        self.seen += n_seen
        self.num_bad += len(bad)
        self.examples.extend(bad[: max(0, self.keep - len(self.examples))])

    def check(self, max_fraction: float) -> None:
        """Raise :class:`DataError` if more than ``max_fraction`` of the images seen so far were unreadable."""
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction}")
        if self.fraction <= max_fraction:
            return
        listed = "\n".join(f"  {b.path}: {b.reason}" for b in self.examples[:5])
        raise DataError(
            f"{self.num_bad} of {self.seen} images ({self.fraction:.2%}) could not be read, more than the allowed "
            f"{max_fraction:.2%}. First ones:\n{listed}\n"
            f"Fix or remove these files, or allow more with --max-bad-fraction (now {max_fraction:g})."
        )

    def summary(self) -> str:
        """One line for a warning, e.g. ``skipped 3 of 1200 images that could not be read (first: path: reason)``."""
        if not self.num_bad:
            return f"all {self.seen} images could be read"
        first = self.examples[0]
        return (
            f"skipped {self.num_bad} of {self.seen} images that could not be read (first: {first.path}: {first.reason})"
        )


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # what a path given as a URL looks like


def read_images(paths: list[str | Path], max_pixels: int = DEFAULT_MAX_PIXELS) -> list[torch.Tensor]:
    """uint8 (3, H, W) tensors; a file that is missing, not a regular file, or not an image is an error naming it."""
    images = []
    for given in paths:
        if isinstance(given, str) and URL.match(given):
            raise ValueError(f"image {given} is a URL: only local image files are read; download it first")
        path = Path(given)
        try:
            check_regular(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"image {path} does not exist") from None
        except NotRegularFile as err:
            raise ValueError(f"image {err}; give image files") from None
        try:
            images.append(read_rgb(path, max_pixels))
        except UNREADABLE_IMAGE_ERRORS as err:
            raise ValueError(f"cannot read {path} as an image: {err}") from None
    return images
