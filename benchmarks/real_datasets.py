"""Materialise small datasets of real images, shipped inside registry packages, in botnet's layouts.

Real means made by cameras, scanners or people, not generated here. Every loader reads only files that an installed
package carries, so nothing is fetched at run time. Classification datasets become ImageFolders
(``DIR/{train,val}/<class>/*.png``); detection/segmentation ones become COCO (``DIR/{train,val}/*.png`` and
``DIR/annotations/instances_{train,val}.json``, boxes and RLE masks). Splits are deterministic for a given ``--seed``.
Each dataset folder gets a ``PROVENANCE.txt`` line: package, version, license, what the images are.

Packages (not project dependencies; install them for this script only)::

    apt-get install dataset-fashion-mnist opencv-doc        # Debian: Fashion-MNIST, OpenCV's digits.png
    uv run --locked --with scikit-learn --with scikit-image --with stardist \\
        python benchmarks/real_datasets.py OUT [--only digits mnist ...]

stardist is only read for its bundled image files (never imported).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCV_DIGITS = Path("/usr/share/doc/opencv-doc/examples/data/digits.png")
FASHION_CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


class MissingSource(RuntimeError):
    """A dataset's package is not installed."""


# ---------------------------------------------------------------- sources


def _pypi(name: str, module: str, hint: str) -> str:
    """Version of an installed PyPI distribution, or a MissingSource saying how to get it."""
    if importlib.util.find_spec(module) is None:
        raise MissingSource(f"needs the PyPI package {name}: {hint}")
    return importlib.metadata.version(name)


def _debian(package: str, path: Path) -> str:
    """Version of an installed Debian package that must provide ``path``."""
    if not path.exists():
        raise MissingSource(f"needs the Debian package {package} ({path} is missing): apt-get install {package}")
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown version"


def _sklearn() -> str:
    return _pypi("scikit-learn", "sklearn", "uv run --with scikit-learn ...")


def _skimage() -> str:
    return _pypi("scikit-image", "skimage", "uv run --with scikit-image ...")


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): big-endian dims after a 4-byte magic whose last byte is the rank."""
    raw = gzip.decompress(path.read_bytes())
    rank = raw[3]
    dims = np.frombuffer(raw, ">u4", count=rank, offset=4).astype(int)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28)
    labels = _read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz")  # (N,)
    return images, labels


# ---------------------------------------------------------------- writing


def stratified_split(labels: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and val indices: per class, a seeded permutation with round(val_frac * n) (at least 1) to val."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, round(val_frac * len(idx)))
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _cap_per_class(labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """At most ``cap`` seeded-random indices per class."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:cap] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def write_folder(root: Path, split: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> None:
    """``root/split/<class>/<index>.png`` for uint8 images (N, H, W) or (N, H, W, 3)."""
    for name in classes:
        (root / split / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(root / split / classes[label] / f"{i:05d}.png")


def write_coco(root: Path, split: str, samples: list[tuple[np.ndarray, list[np.ndarray], list[int]]], classes) -> None:
    """COCO instances JSON + PNGs from ``(image, [bool mask (H, W)], [label 1..K])`` samples."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (image, masks, labels) in enumerate(samples, start=1):
        name = f"{i:06d}.png"
        Image.fromarray(image).save(root / split / name)
        images.append({"id": i, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
        for mask, label in zip(masks, labels, strict=True):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            ann = {"id": len(annotations) + 1, "image_id": i, "category_id": label, "bbox": [x, y, w, h]}
            annotations.append({**ann, "area": float(mask.sum()), "iscrowd": 0, "segmentation": rle})
    categories = [{"id": k, "name": name, "supercategory": "object"} for k, name in enumerate(classes, start=1)]
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data, separators=(",", ":")))


def _to_uint8(images: np.ndarray, top: float) -> np.ndarray:
    return np.clip(np.rint(images.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- classification


def digits(root: Path, args) -> str:
    version = _sklearn()
    from sklearn.datasets import load_digits

    data = load_digits()
    images, labels = _to_uint8(data.images, 16.0), data.target  # (1797, 8, 8), counts 0..16
    tr, va = stratified_split(labels, args.val_frac, args.seed)
    classes = tuple(str(d) for d in range(10))
    write_folder(root, "train", images[tr], labels[tr], classes)
    write_folder(root, "val", images[va], labels[va], classes)
    return (
        f"scikit-learn {version} (BSD-3-Clause) load_digits: 1797 handwritten digits 8x8, 10 classes; UCI Optical "
        "Recognition of Handwritten Digits (CC BY 4.0), NIST forms by 43 writers, scanned, 4x4-block pixel counts"
    )


def mnist(root: Path, args) -> str:
    version = _debian("opencv-doc", OPENCV_DIGITS)
    sheet = np.asarray(Image.open(OPENCV_DIGITS).convert("L"))  # (1000, 2000): 50 rows x 100 columns of 20x20
    images = sheet.reshape(50, 20, 100, 20).transpose(0, 2, 1, 3).reshape(5000, 20, 20)
    labels = np.repeat(np.arange(10), 500)  # five rows of 100 per digit
    tr, va = stratified_split(labels, args.val_frac, args.seed)
    classes = tuple(str(d) for d in range(10))
    write_folder(root, "train", images[tr], labels[tr], classes)
    write_folder(root, "val", images[va], labels[va], classes)
    return (
        f"Debian opencv-doc {version} (OpenCV samples, Apache-2.0/BSD-3-Clause) examples/data/digits.png: 5000 "
        "handwritten MNIST digits 20x20, 10 classes (MNIST, LeCun/Cortes/Burges, CC BY-SA 3.0; scanned NIST forms)"
    )


def fashion_mnist(root: Path, args) -> str:
    version = _debian("dataset-fashion-mnist", FASHION_DIR / "train-images-idx3-ubyte.gz")
    for split, cap in (("train", args.fashion_train_per_class), ("val", args.fashion_val_per_class)):
        images, labels = _fashion(split)
        keep = _cap_per_class(labels, cap, args.seed)
        write_folder(root, split, images[keep], labels[keep], FASHION_CLASSES)
    return (
        f"Debian dataset-fashion-mnist {version} (MIT, Zalando SE): Fashion-MNIST product photos 28x28 grey, 10 "
        f"classes; train {args.fashion_train_per_class}/class from its train set, val "
        f"{args.fashion_val_per_class}/class from its test set (full: 60000 + 10000)"
    )


def lfw_faces(root: Path, args) -> str:
    version = _skimage()
    from skimage import data

    images = data.lfw_subset()  # (200, 25, 25): 100 faces then 100 background crops
    images = _to_uint8(images, 1.0) if images.dtype != np.uint8 else images
    labels = np.repeat([0, 1], 100)
    tr, va = stratified_split(labels, args.val_frac, args.seed)
    write_folder(root, "train", images[tr], labels[tr], ("face", "non_face"))
    write_folder(root, "val", images[va], labels[va], ("face", "non_face"))
    return (
        f"scikit-image {version} (BSD-3-Clause) data.lfw_subset: 200 grey 25x25 crops of LFW news photos, 100 faces "
        "and 100 background (non-face) crops, 2 classes (LFW, UMass: research use)"
    )


def textures(root: Path, args, stride: int = 32) -> str:
    version = _skimage()
    patch = args.texture_patch
    from skimage import data

    classes = ("brick", "grass", "gravel")
    train, val, train_y, val_y = [], [], [], []
    for label, name in enumerate(classes):
        photo = getattr(data, name)()  # (512, 512) grey photo of one surface
        cut = photo.shape[0] * 3 // 4  # rows above: train patches, rows below: val patches (disjoint pixels)
        for y in range(0, photo.shape[0] - patch + 1, stride):
            for x in range(0, photo.shape[1] - patch + 1, stride):
                if y + patch <= cut:
                    train.append(photo[y : y + patch, x : x + patch])
                    train_y.append(label)
                elif y >= cut:
                    val.append(photo[y : y + patch, x : x + patch])
                    val_y.append(label)
    write_folder(root, "train", np.stack(train), np.array(train_y), classes)
    write_folder(root, "val", np.stack(val), np.array(val_y), classes)
    return (
        f"scikit-image {version} (BSD-3-Clause; photos CC0) data.brick/grass/gravel: {patch}x{patch} grey patches "
        f"(stride {stride}) of three 512x512 texture photos, 3 classes; train from the top 3/4 of each photo, val from "
        "the bottom 1/4 (disjoint pixels, but one photo per class)"
    )


# ---------------------------------------------------------------- detection / segmentation

_TRAIN_PHOTOS = ("astronaut", "camera", "chelsea", "rocket", "motorcycle", "brick", "grass", "gravel", "china")
_VAL_PHOTOS = ("coffee", "flower")


def _photo(name: str) -> np.ndarray:
    """An RGB uint8 real photo bundled with scikit-image or scikit-learn."""
    from skimage import color, data

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    return color.gray2rgb(image) if image.ndim == 2 else image[..., :3]


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of 40-100% of the photo's short side, resized to ``size``."""
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.4, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.BILINEAR)
    return np.asarray(crop).copy()


def _paste_objects(background, items, item_labels, rng, size: int, max_objects: int = 4):
    """Paste 1..max_objects Fashion-MNIST items (mask: pixels above 10) at 28-64 px; later ones occlude earlier."""
    image, masks, labels = background, [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        k = int(rng.integers(len(items)))
        side = int(rng.integers(28, 65))
        item = np.asarray(Image.fromarray(items[k]).resize((side, side), Image.BILINEAR))
        y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        mask = np.zeros((size, size), bool)
        mask[y : y + side, x : x + side] = item > 10
        if any((mask & m).sum() > 0.3 * m.sum() for m in masks):
            continue  # would hide too much of an object already placed
        full = np.zeros((size, size), np.uint8)
        full[y : y + side, x : x + side] = item
        image[mask] = full[mask][:, None]
        masks = [m & ~mask for m in masks] + [mask]
        labels.append(int(item_labels[k]) + 1)
    kept = [i for i, m in enumerate(masks) if m.sum() >= 16]  # drop objects left almost hidden
    return image, [masks[i] for i in kept], [labels[i] for i in kept]


def fashion_on_photos(root: Path, args) -> str:
    size = args.det_size
    version = _debian("dataset-fashion-mnist", FASHION_DIR / "train-images-idx3-ubyte.gz")
    sk, sl = _skimage(), _sklearn()
    for split, photos, count in (("train", _TRAIN_PHOTOS, args.det_train), ("val", _VAL_PHOTOS, args.det_val)):
        rng = np.random.default_rng([args.seed, int(split == "val")])
        items, item_labels = _fashion(split)
        backgrounds = [_photo(name) for name in photos]
        samples = []
        for _ in range(count):
            crop = _crop(backgrounds[int(rng.integers(len(backgrounds)))], size, rng)
            samples.append(_paste_objects(crop, items, item_labels, rng, size))
        write_coco(root, split, samples, FASHION_CLASSES)
    return (
        f"composite: Fashion-MNIST product photos (Debian dataset-fashion-mnist {version}, MIT) cut out by their own "
        f"non-black pixels and pasted, 1-4 per image at 28-64 px, onto {size}x{size} crops of real photos from "
        f"scikit-image {sk} and scikit-learn {sl} (BSD-3-Clause; train backgrounds {', '.join(_TRAIN_PHOTOS)}; val "
        f"{', '.join(_VAL_PHOTOS)}; val items from the test set); boxes and masks exact; placement is synthetic"
    )


def nuclei(root: Path, args, tile: int = 128, stride: int = 32) -> str:
    if importlib.util.find_spec("stardist") is None:
        raise MissingSource("needs the PyPI package stardist (only its bundled images): uv run --with stardist ...")
    version = importlib.metadata.version("stardist")
    folder = Path(importlib.util.find_spec("stardist").submodule_search_locations[0]) / "data" / "images"
    image = np.asarray(Image.open(folder / "img2d.tif")).astype(np.float64)  # (512, 512) uint16 fluorescence
    labels = np.asarray(Image.open(folder / "mask2d.tif")).astype(np.int64)  # (512, 512) instance ids, 0 = none
    image = _to_uint8(image, np.percentile(image, 99.8))
    cut = image.shape[1] - tile  # columns left of cut: train tiles (overlapping); right of it: val tiles
    for split, xs, step in (("train", range(0, cut - tile + 1, stride), stride), ("val", [cut], tile)):
        samples = []
        for y in range(0, image.shape[0] - tile + 1, step):
            for x in xs:
                crop = labels[y : y + tile, x : x + tile]
                ids = [i for i in np.unique(crop) if i and (crop == i).sum() >= args.min_area]
                samples.append((image[y : y + tile, x : x + tile], [crop == i for i in ids], [1] * len(ids)))
        write_coco(root, split, samples, ("nucleus",))
    return (
        f"stardist {version} (BSD-3-Clause) data/images/img2d.tif + mask2d.tif: one 512x512 fluorescence microscopy "
        f"image from the 2018 Data Science Bowl (Caicedo et al. 2019) with hand-annotated nucleus instances; "
        f"{tile}x{tile} tiles, train from columns 0-{cut - 1} (stride {stride}, overlapping), val from columns "
        f"{cut}-511 (not overlapping); nuclei cut below {args.min_area} px dropped"
    )


DATASETS: dict[str, tuple[str, Callable[[Path, argparse.Namespace], str]]] = {
    "digits": ("classification", digits),
    "mnist": ("classification", mnist),
    "fashion_mnist": ("classification", fashion_mnist),
    "lfw_faces": ("classification", lfw_faces),
    "textures": ("classification", textures),
    "fashion_on_photos": ("detection", fashion_on_photos),
    "nuclei": ("segmentation", nuclei),
}


def count(root: Path, kind: str) -> str:
    """A one-line summary of what was written."""
    if kind == "classification":
        parts = []
        for split in ("train", "val"):
            folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
            parts.append(f"{split} {sum(len(list(f.glob('*.png'))) for f in folders)} images/{len(folders)} classes")
        return ", ".join(parts)
    parts = []
    for split in ("train", "val"):
        data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        files = len(list((root / split).glob("*.png")))
        parts.append(f"{split} {files} images/{len(data['annotations'])} objects")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder; each dataset goes to OUT/<name>/ (replaced if present)")
    p.add_argument("--only", nargs="+", choices=sorted(DATASETS), help="datasets to write (default: all available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-frac", type=float, default=0.2, help="val fraction of the stratified splits (default 0.2)")
    p.add_argument("--fashion-train-per-class", type=int, default=1000)
    p.add_argument("--fashion-val-per-class", type=int, default=200)
    p.add_argument("--det-train", type=int, default=400, help="fashion_on_photos train images")
    p.add_argument("--det-val", type=int, default=100, help="fashion_on_photos val images")
    p.add_argument("--det-size", type=int, default=128, help="fashion_on_photos image side (px)")
    p.add_argument("--min-area", type=int, default=8, help="nuclei: smallest kept part of a nucleus in a tile (px)")
    p.add_argument("--texture-patch", type=int, default=64, help="textures: patch side (px), at most 128 (default 64)")
    args = p.parse_args(argv)
    if not 0.0 < args.val_frac < 1.0:
        p.error(f"--val-frac must be between 0 and 1, got {args.val_frac}")
    if min(args.fashion_train_per_class, args.fashion_val_per_class, args.det_train, args.det_val) < 1:
        p.error("the per-class and image counts must be at least 1")
    if not 8 <= args.texture_patch <= 128:  # the val patches come from the bottom 128 rows of each photo
        p.error(f"--texture-patch must be between 8 and 128, got {args.texture_patch}")
    missing = []
    for name in args.only or DATASETS:
        kind, build = DATASETS[name]
        root = args.out / name
        shutil.rmtree(root, ignore_errors=True)
        try:
            provenance = build(root, args)
        except MissingSource as e:
            shutil.rmtree(root, ignore_errors=True)
            missing.append(f"{name}: {e}")
            continue
        (root / "PROVENANCE.txt").write_text(provenance + "\n")
        print(f"{name} ({kind}): {count(root, kind)}\n    {provenance}")
    for line in missing:
        print(f"skipped {line}", file=sys.stderr)
    return 2 if missing and args.only else 0


if __name__ == "__main__":
    sys.exit(main())
