import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from botnet.data import coco_shapes
from botnet.data.coco_shapes import (
    DETECTION_CLASSES,
    MANIFEST,
    builtin_coco_shapes,
    render_detection_image,
    write_coco_shapes,
)
from botnet.data.shapes import SHAPE_CLASSES

SMALL = {"num_train": 6, "num_val": 2, "size": 32}


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    """A few hundred 128 px training images, written once, loaded with pycocotools."""
    root = write_coco_shapes(tmp_path_factory.mktemp("coco_shapes"), num_train=300, num_val=1, seed=3)
    return root, COCO(str(root / "annotations" / "instances_train.json"))


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_write_is_deterministic_and_independent_of_workers(tmp_path):
    a = write_coco_shapes(tmp_path / "a", num_train=16, num_val=6, size=64, seed=1)
    b = write_coco_shapes(tmp_path / "b", num_train=16, num_val=6, size=64, seed=1, workers=2)
    files = _files(a)
    assert len(files) == 16 + 6 + 2
    assert files == _files(b)
    other_seed = _files(write_coco_shapes(tmp_path / "c", num_train=16, num_val=6, size=64, seed=2))
    first = a.joinpath("train", "000000.png").relative_to(a)
    assert other_seed[first] != files[first]


def test_splits_come_from_different_streams():
    train = [np.asarray(render_detection_image(0, "train", i)[0]) for i in range(4)]
    val = [np.asarray(render_detection_image(0, "val", i)[0]) for i in range(4)]
    assert all(not np.array_equal(t, v) for t in train for v in val)
    assert np.array_equal(train[0], np.asarray(render_detection_image(0, "train", 0)[0]))


def test_layout_and_fields(train_set):
    root, coco = train_set
    assert [c["id"] for c in coco.dataset["categories"]] == list(range(1, len(DETECTION_CLASSES) + 1))
    assert [c["name"] for c in coco.dataset["categories"]] == list(DETECTION_CLASSES)
    assert {c["supercategory"] for c in coco.dataset["categories"]} == {"shape"}
    assert sorted(coco.getImgIds()) == list(range(1, 301))
    for img in coco.dataset["images"][:5]:
        with Image.open(root / "train" / img["file_name"]) as im:
            assert im.size == (img["width"], img["height"]) == (128, 128) and im.mode == "RGB"
    anns = coco.dataset["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert all(a["iscrowd"] == 0 and 1 <= a["category_id"] <= len(DETECTION_CLASSES) for a in anns)
    per_image = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert max(per_image) <= 6 and per_image.count(0) >= 1  # images without objects are listed too
    assert np.mean(per_image) > 2
    val = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert [img["file_name"] for img in val["images"]] == ["000000.png"]


def test_annotations_match_rendered_masks(train_set):
    _, coco = train_set
    kinds, ious = {"polygon": 0, "rle": 0}, []
    for img_id in coco.getImgIds()[:150]:
        _, instances = render_detection_image(3, "train", img_id - 1)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert [a["category_id"] - 1 for a in anns] == [inst["label"] for inst in instances]
        union = np.zeros((128, 128), dtype=np.int32)
        for ann, inst in zip(anns, instances, strict=True):
            rendered = inst["mask"].astype(bool)
            ys, xs = np.nonzero(rendered)
            assert ann["area"] == rendered.sum() >= 12
            assert ann["bbox"] == inst["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            union += rendered
            mask = coco.annToMask(ann).astype(bool)
            if isinstance(ann["segmentation"], dict):
                kinds["rle"] += 1
                assert np.array_equal(mask, rendered)  # RLE is exact
            else:  # a polygon is the drawn outline: equal up to pixels on the boundary
                kinds["polygon"] += 1
                iou = (mask & rendered).sum() / (mask | rendered).sum()
                assert iou > (0.9 if rendered.sum() >= 300 else 0.85)
                ious.append(iou)
        assert union.max() <= 1  # visible parts of occluding objects do not overlap
    assert kinds["polygon"] > 50 and kinds["rle"] > 50
    assert np.mean(ious) > 0.95


def test_small_medium_and_large_objects(train_set):
    _, coco = train_set
    areas = np.array([a["area"] for a in coco.dataset["annotations"]])
    small, large = (areas < 32**2).sum(), (areas > 96**2).sum()
    assert small > 0.3 * len(areas) and large >= 3 and len(areas) - small - large > 0.2 * len(areas)
    assert areas.min() < 12**2


def test_render_objects_are_in_classes():
    classes = ("ring", "crescent")
    for i in range(10):
        img, instances = render_detection_image(0, "train", i, size=48, classes=classes)
        assert img.size == (48, 48)
        for inst in instances:
            assert inst["label"] in (0, 1) and inst["mask"].shape == (48, 48) and inst["polygon"] is None


@pytest.mark.parametrize(
    "kw",
    [{"size": 31}, {"num_train": 0}, {"num_val": -1}, {"classes": ()}, {"classes": ("circle", "oval")}, {"seed": -1}],
)
def test_bad_parameters(tmp_path, kw):
    with pytest.raises(ValueError):
        write_coco_shapes(tmp_path, **{**SMALL, **kw})
    with pytest.raises(ValueError):
        builtin_coco_shapes(tmp_path, **{**SMALL, **kw})
    assert not any(tmp_path.iterdir())


def test_unknown_parameter(tmp_path):
    with pytest.raises(TypeError, match="unknown"):
        builtin_coco_shapes(tmp_path, num_images=3)
    assert set(DETECTION_CLASSES) <= set(SHAPE_CLASSES)


def test_builtin_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTNET_CACHE", str(tmp_path))
    root = builtin_coco_shapes(**SMALL)
    assert root.parent == tmp_path / "datasets" and root.name.startswith("coco_shapes-")
    assert builtin_coco_shapes(tmp_path / "other", **SMALL) == tmp_path / "other" / "datasets" / root.name
    assert json.loads((root / MANIFEST).read_text())["num_train"] == 6
    assert len(list((root / "train").glob("*.png"))) == 6
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def no_write(*args, **kwargs):
        raise AssertionError("the cached dataset was written again")

    monkeypatch.setattr(coco_shapes, "write_coco_shapes", no_write)
    assert builtin_coco_shapes(**SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
    assert os.listdir(tmp_path / "datasets") == [root.name]  # no temporary directory left behind


def test_builtin_rewrites_incomplete_and_ignores_temporary_dirs(tmp_path):
    root = builtin_coco_shapes(tmp_path, **SMALL)
    manifest = (root / MANIFEST).read_text()
    (root / MANIFEST).unlink()  # an interrupted write that somehow got the final name
    (root / "train" / "000000.png").write_bytes(b"truncated")
    leftover = root.with_name(f".{root.name}.tmp-1-dead")  # a killed writer's temporary copy
    leftover.mkdir()
    (leftover / MANIFEST).write_text(manifest)

    assert builtin_coco_shapes(tmp_path, **SMALL) == root
    assert (root / MANIFEST).exists()
    with Image.open(root / "train" / "000000.png") as im:
        assert im.size == (32, 32)
    assert leftover.exists()  # not ours to delete: it may belong to a writer still running
    assert sorted(os.listdir(tmp_path / "datasets")) == sorted([root.name, leftover.name])


def test_builtin_removes_the_copies_of_killed_writers_only(tmp_path):
    import socket
    import subprocess
    import sys

    root = builtin_coco_shapes(tmp_path, **SMALL)
    shutil.rmtree(root)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, host = int(ended.stdout), socket.gethostname()
    dead = root.with_name(f".{root.name}.tmp-{host}-{dead_pid}-abcd1234")  # a killed writer on this host
    live = root.with_name(f".{root.name}.tmp-{host}-{os.getpid()}-abcd1234")  # a writer still running
    remote = root.with_name(f".{root.name}.tmp-elsewhere-{dead_pid}-abcd1234")  # another host's: unknowable
    for d in (dead, live, remote):
        d.mkdir()
    assert builtin_coco_shapes(tmp_path, **SMALL) == root
    assert not dead.exists() and live.exists() and remote.exists()


def test_builtin_rename_loser_uses_the_winner(tmp_path, monkeypatch):
    root = builtin_coco_shapes(tmp_path, **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    calls = []
    real = coco_shapes._is_complete

    def complete_after_first_check(folder, manifest):
        calls.append(folder)
        return len(calls) > 1 and real(folder, manifest)  # as if another rank finished while this one wrote

    monkeypatch.setattr(coco_shapes, "_is_complete", complete_after_first_check)
    assert builtin_coco_shapes(tmp_path, **SMALL) == root
    assert len(calls) == 2
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps  # the winner's copy is untouched
    assert os.listdir(tmp_path / "datasets") == [root.name]  # the loser's copy is gone
