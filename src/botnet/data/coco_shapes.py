"""The built-in detection and instance-segmentation dataset: several shapes per image, written in COCO format.

Images are drawn like the classification shapes (textured backgrounds, anti-aliased shapes) but hold 0 to 6 objects
of sizes from COCO "small" to "large" that overlap a little. ``write_coco_shapes`` writes them as a real COCO dataset
(PNG images + ``annotations/instances_<split>.json``) so that training and evaluation go through the ordinary COCO
loading path; ``builtin_coco_shapes`` writes the default one once into a cache directory.

Every image and its annotations are a pure function of ``(seed, split, index, size, classes)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import socket
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from .shapes import _SUPERSAMPLE, SHAPE_CLASSES, _draw_shape, _shape_polygon, _texture

# Shapes that stay distinguishable down to a radius of ~7 px (hexagon/circle and semicircle/crescent do not).
DETECTION_CLASSES = ("circle", "triangle", "square", "star", "ring", "cross")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

_OBJECT_COUNTS = (0.04, 0.12, 0.18, 0.2, 0.18, 0.15, 0.13)  # P(0), ..., P(6) objects placed in an image
_MIN_AREA = 150.0  # smallest object area in px (a circle of radius 7), COCO "small"
_MAX_AREA = math.pi * 0.3**2  # largest ordinary object area, as a fraction of size**2 (circle of radius 0.3 size)
_LARGE_PROB = 0.15  # probability that an image's first object is drawn "large"
_LARGE_AREA = (0.6, 0.9)  # area of a large object as a fraction of size**2; COCO "large" is > 96**2 = 0.56 * 128**2
_MAX_OVERLAP = 0.25  # intersection of two objects over the smaller one's area
_MIN_VISIBLE = 0.6  # an object less visible than this (occluded or cut by the border) is not drawn
_MIN_PIXELS = 12
_TRIES = 12  # positions tried per object
_CIRCLE_VERTICES = 32  # polygon standing for a circle in the annotations


@dataclass
class _Object:
    kind: str
    label: int
    cx: float  # centre and radius in image pixels; pixel (i, j) covers [i, i+1) x [j, j+1)
    cy: float
    r: float
    angle: float
    x0: int  # top-left image pixel of the drawn window (may lie outside the image)
    y0: int
    soft: np.ndarray  # uint8 (h, w): anti-aliased coverage in the window
    mask: np.ndarray  # bool (size, size): coverage >= 50% inside the image
    area: int  # pixels of mask
    full_area: int  # pixels with coverage >= 50%, inside the image or not
    fill: np.ndarray | None = None  # RGB, chosen once the object is placed


def _check_classes(classes) -> tuple[str, ...]:
    classes = tuple(classes) if not isinstance(classes, str) else (classes,)
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ValueError(
            f"classes must be a non-empty list of distinct names from {list(SHAPE_CLASSES)}, got {list(classes)}"
        )
    return classes


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size < 32:
        raise ValueError(f"coco_shapes images need an integer size of at least 32 px, got {size!r}")


@functools.cache
def _area_per_r2(kind: str) -> float:
    """Area of ``kind`` drawn with radius r, divided by r**2 (measured once on a large drawing)."""
    r, s = 100.0, 256
    canvas = Image.new("L", (s, s), 0)
    _draw_shape(ImageDraw.Draw(canvas), kind, s / 2, s / 2, r, 0.0)
    return float(np.count_nonzero(np.asarray(canvas))) / r**2


def _draw_object(kind: str, label: int, cx: float, cy: float, r: float, angle: float, size: int) -> _Object:
    """Draw one shape supersampled in a window around it, downsample (anti-aliased), binarize at 50%."""
    s = _SUPERSAMPLE
    x0, y0 = math.floor(cx - r) - 1, math.floor(cy - r) - 1
    w, h = math.ceil(cx + r) + 2 - x0, math.ceil(cy + r) + 2 - y0
    canvas = Image.new("L", (w * s, h * s), 0)
    # Image coordinate x maps to x * s - 0.5 in the canvas, where PIL puts pixel centres on integers.
    _draw_shape(ImageDraw.Draw(canvas), kind, (cx - x0) * s - 0.5, (cy - y0) * s - 0.5, r * s, angle)
    soft = np.asarray(canvas.resize((w, h), Image.Resampling.BOX))  # (h, w)
    binary = soft >= 128
    mask = np.zeros((size, size), dtype=bool)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
    if ix0 < ix1 and iy0 < iy1:
        mask[iy0:iy1, ix0:ix1] = binary[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    area, full_area = int(np.count_nonzero(mask)), int(np.count_nonzero(binary))
    return _Object(kind, label, cx, cy, r, angle, x0, y0, soft, mask, area, full_area)


def _place(
    rng: np.random.Generator, kind: str, label: int, large: bool, size: int, placed: list[_Object]
) -> _Object | None:
    """Rejection-sample a position for one object: mostly inside the image, overlapping the others a little."""
    if large:
        area = rng.uniform(*_LARGE_AREA) * size**2
    else:
        area = math.exp(rng.uniform(math.log(_MIN_AREA), math.log(_MAX_AREA * size**2)))
    r = math.sqrt(area / _area_per_r2(kind))
    if not large:
        r = min(r, size / 2 - 2)  # ordinary objects lie fully inside the image
    angle = rng.uniform(0, 2 * math.pi)
    for _ in range(_TRIES):
        if large:
            cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
        else:
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        if any(o.mask[int(cy), int(cx)] for o in placed):
            continue  # centred on another object: too much overlap, known without drawing
        obj = _draw_object(kind, label, float(cx), float(cy), r, angle, size)
        if obj.area < max(_MIN_PIXELS, _MIN_VISIBLE * obj.full_area):
            continue  # cut by the border
        if all(np.count_nonzero(obj.mask & o.mask) <= _MAX_OVERLAP * min(obj.area, o.area) for o in placed):
            return obj
    return None


def _colour(rng: np.random.Generator, under: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """A colour differing from the mean background ``under`` the object by > 100 and from other objects by > 60."""
    mean_bg = under.reshape(-1, 3).mean(0)
    while True:
        fill = rng.integers(0, 256, 3)
        if np.abs(fill - mean_bg).max() > 100 and all(np.abs(fill - o).max() > 60 for o in others):
            return fill


def _polygon(obj: _Object) -> list[float] | None:
    """The outline ``obj`` was drawn from, in image coordinates, or None for rings and crescents."""
    if obj.kind == "circle":
        r = obj.r + 0.5 / _SUPERSAMPLE  # PIL's ellipse covers the pixels on its bounding box
        step = 2 * math.pi / _CIRCLE_VERTICES
        vertices = [(obj.cx + r * math.cos(k * step), obj.cy + r * math.sin(k * step)) for k in range(_CIRCLE_VERTICES)]
    else:
        vertices = _shape_polygon(obj.kind, obj.cx, obj.cy, obj.r, obj.angle)
        if vertices is None:
            return None
    return [round(v, 2) for point in vertices for v in point]


def render_detection_image(
    seed: int, split: str, index: int, size: int = 128, classes=DETECTION_CLASSES
) -> tuple[Image.Image, list[dict]]:
    """The ``index``-th image of ``split`` and its objects, back to front.

    Each object is ``{"label": index into classes, "mask": uint8 (size, size) visible part, "bbox": [x, y, w, h] of
    the mask, "polygon": [x1, y1, x2, y2, ...] outline or None}``. The polygon is given only for a fully visible
    object whose shape is a polygon or a circle; rings, crescents, occluded and cut objects have None.
    """
    _check_size(size)
    classes = _check_classes(classes)
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), index])
    bg = _texture(rng, size)
    count = int(rng.choice(len(_OBJECT_COUNTS), p=_OBJECT_COUNTS))
    large = rng.random() < _LARGE_PROB
    placed: list[_Object] = []
    for k in range(count):
        label = int(rng.integers(len(classes)))
        obj = _place(rng, classes[label], label, large and k == 0, size, placed)
        if obj is not None:
            obj.fill = _colour(rng, bg[obj.mask], [o.fill for o in placed])
            placed.append(obj)

    # Later objects occlude earlier ones; keep those still visible enough, from the front to the back.
    kept: list[tuple[_Object, np.ndarray]] = []
    occluded = np.zeros((size, size), dtype=bool)
    for obj in reversed(placed):
        visible = obj.mask & ~occluded
        area = int(np.count_nonzero(visible))
        if area >= max(_MIN_PIXELS, _MIN_VISIBLE * obj.full_area):
            kept.append((obj, visible))
            occluded |= obj.mask
    kept.reverse()

    img = bg.astype(np.float32)
    instances = []
    for obj, visible in kept:
        h, w = obj.soft.shape
        ix0, iy0, ix1, iy1 = max(obj.x0, 0), max(obj.y0, 0), min(obj.x0 + w, size), min(obj.y0 + h, size)
        alpha = obj.soft[iy0 - obj.y0 : iy1 - obj.y0, ix0 - obj.x0 : ix1 - obj.x0, None].astype(np.float32) / 255
        img[iy0:iy1, ix0:ix1] = img[iy0:iy1, ix0:ix1] * (1 - alpha) + obj.fill.astype(np.float32) * alpha
        ys, xs = np.nonzero(visible)
        x, y = int(xs.min()), int(ys.min())
        whole = len(xs) == obj.full_area  # neither occluded nor cut by the border
        instances.append(
            {
                "label": obj.label,
                "mask": visible.astype(np.uint8),
                "bbox": [float(x), float(y), float(xs.max() + 1 - x), float(ys.max() + 1 - y)],
                "polygon": _polygon(obj) if whole else None,
            }
        )
    return Image.fromarray(np.rint(img).astype(np.uint8)), instances


def _check_counts(num_train: int, num_val: int, seed: int, workers: int) -> None:
    for name, value, least in (("num_train", num_train, 1), ("num_val", num_val, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 (0 writes in this process), got {workers!r}")


def _segmentation(instance: dict) -> list[list[float]] | dict:
    if instance["polygon"] is not None:
        return [instance["polygon"]]
    rle = mask_utils.encode(np.asfortranarray(instance["mask"]))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _write_image(job: tuple) -> list[dict]:
    """Render one image, save it as PNG and return its annotations (without ids)."""
    seed, split, index, size, classes, folder = job
    img, instances = render_detection_image(seed, split, index, size, classes)
    img.save(Path(folder) / f"{index:06d}.png", compress_level=1)  # noisy textures barely compress: save time
    return [
        {
            "category_id": inst["label"] + 1,
            "bbox": inst["bbox"],
            "area": float(inst["mask"].sum()),
            "iscrowd": 0,
            "segmentation": _segmentation(inst),
        }
        for inst in instances
    ]


def write_coco_shapes(
    root: str | Path,
    *,
    num_train: int = 3000,
    num_val: int = 300,
    size: int = 128,
    seed: int = 0,
    classes=DETECTION_CLASSES,
    workers: int = 0,
) -> Path:
    """Write the shapes detection dataset in COCO format under ``root`` and return ``root``.

    Layout: ``root/{train,val}/000000.png ...`` and ``root/annotations/instances_{train,val}.json``; a JSON's
    ``file_name`` is relative to its split's folder. Images with no object are listed without annotations. The
    output depends only on the parameters, not on ``workers`` (processes drawing images; 0 draws them here).
    """
    _check_size(size)
    _check_counts(num_train, num_val, seed, workers)
    classes = _check_classes(classes)
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(classes)]
    pool = multiprocessing.Pool(workers) if workers > 0 else None
    try:
        for split, count in (("train", num_train), ("val", num_val)):
            folder = root / split
            folder.mkdir(exist_ok=True)
            jobs = [(seed, split, i, size, classes, str(folder)) for i in range(count)]
            if pool is None:
                per_image = list(map(_write_image, jobs))
            else:
                per_image = pool.map(_write_image, jobs, chunksize=max(1, count // (8 * workers)))
            images, annotations = [], []
            for index, anns in enumerate(per_image):
                images.append({"id": index + 1, "file_name": f"{index:06d}.png", "width": size, "height": size})
                for ann in anns:
                    annotations.append({"id": len(annotations) + 1, "image_id": index + 1, **ann})
            data = {
                "info": {"description": "botnet coco_shapes", "version": str(FORMAT_VERSION)},
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
            (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data, separators=(",", ":")))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return root


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("BOTNET_CACHE") or Path.home() / ".cache" / "botnet"
    return Path(cache_dir).expanduser() / "datasets"


def _is_complete(folder: Path, manifest: dict) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()) == manifest
    except (OSError, ValueError):
        return False


def _install(tmp: Path, final: Path, manifest: dict) -> None:
    """Rename the finished ``tmp`` to ``final``; if another writer got there first, keep theirs."""
    error: OSError | None = None
    for _ in range(3):
        try:
            os.rename(tmp, final)  # atomic; fails when final exists and is not empty
            return
        except OSError as e:
            error = e
        if _is_complete(final, manifest):
            return  # another writer (e.g. another rank) won the race: its copy is identical
        # ``final`` is an incomplete leftover: move it aside, then try again.
        stale = final.with_name(f".{final.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, stale)
        except FileNotFoundError:
            continue
        shutil.rmtree(stale, ignore_errors=True)
    raise OSError(f"could not move the written dataset {tmp} to {final}: {error}")


def _remove_dead_writers(final: Path) -> None:
    """Delete the temporary copies of ``final`` left by killed writers: those named with this host and the id of
    a process that no longer exists. A copy of a live process, or of another host, is left alone."""
    host = socket.gethostname()
    for path in final.parent.glob(f".{final.name}.tmp-*"):
        parts = path.name[len(f".{final.name}.tmp-") :].rsplit("-", 2)  # host (may contain "-"), pid, random
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # exists, owned by someone else
            pass


def builtin_coco_shapes(cache_dir: str | Path | None = None, **kw) -> Path:
    """The default shapes detection dataset, written once and reused; returns its root (see ``write_coco_shapes``).

    It lives in ``<cache_dir>/datasets/coco_shapes-<hash of the parameters>``, ``cache_dir`` defaulting to
    ``$BOTNET_CACHE`` or ``~/.cache/botnet``. The dataset is written into a temporary sibling directory, marked
    complete by ``manifest.json`` and renamed into place, so an interrupted write never looks complete and
    concurrent writers (several ranks) are safe: the one that loses the rename discards its copy. The copies of
    writers that were killed (this host, a process id that no longer exists) are removed by the next writer.

    Args:
        cache_dir: where to keep datasets.
        **kw: ``num_train``, ``num_val``, ``size``, ``seed``, ``classes``, ``workers`` of ``write_coco_shapes``.
    """
    params = {"num_train": 3000, "num_val": 300, "size": 128, "seed": 0, "classes": DETECTION_CLASSES}
    unknown = set(kw) - set(params) - {"workers"}
    if unknown:
        raise TypeError(f"unknown coco_shapes parameters {sorted(unknown)}; expected some of {[*params, 'workers']}")
    workers = kw.pop("workers", 0)
    params.update(kw)
    _check_size(params["size"])
    _check_counts(params["num_train"], params["num_val"], params["seed"], workers)
    params["classes"] = list(_check_classes(params["classes"]))
    manifest = {"format_version": FORMAT_VERSION, **params}
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    final = _cache_root(cache_dir) / f"coco_shapes-{digest}"
    if _is_complete(final, manifest):
        return final

    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_writers(final)
    tmp = final.with_name(f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        write_coco_shapes(tmp, workers=workers, **{**params, "classes": tuple(params["classes"])})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        _install(tmp, final, manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename succeeded
    return final
