"""The held-out validation split: stratified, deterministic, disjoint, the same in every process; and the checks of
a training set before training (too few images per class, imbalance, no valid box)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from botnet.data.checks import check_boxes, check_class_counts, imbalance_message
from botnet.data.coco import CocoDetection
from botnet.data.coco_shapes import write_coco_shapes
from botnet.data.folder import DataError
from botnet.data.split import coco_holdout, holdout_count, image_folder_splits, stratified_holdout
from train_helpers import write_image_folder

KEYS = [f"{c}/{i:03d}.png" for c in "abc" for i in range({"a": 10, "b": 5, "c": 2}[c])]
GROUPS = [{"a": 0, "b": 1, "c": 2}[k[0]] for k in KEYS]


def test_holdout_count_rounds_half_up_with_at_least_one_and_one_left():
    # round(0.2 * n) half up, clamped to [1, n - 1]: written out by hand.
    expected = {1: 0, 2: 1, 3: 1, 5: 1, 7: 1, 8: 2, 10: 2, 12: 2, 13: 3, 100: 20}
    assert {n: holdout_count(n, 0.2) for n in expected} == expected
    assert holdout_count(2, 0.9) == 1 and holdout_count(10, 0.9) == 9 and holdout_count(10, 0.25) == 3
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        holdout_count(10, 1.0)


def test_stratified_deterministic_and_disjoint():
    train, val = stratified_holdout(KEYS, GROUPS, 0.2, seed=0)
    assert sorted(train + val) == list(range(len(KEYS))) and not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)
    per_class = Counter(GROUPS[i] for i in val)
    assert per_class == {0: 2, 1: 1, 2: 1}  # 10 -> 2, 5 -> 1, 2 -> 1
    assert stratified_holdout(KEYS, GROUPS, 0.2, seed=0) == (train, val)
    # Another seed picks other images (10 choose 2 and 5 choose 1: the same pick by chance is unlikely for 5 seeds).
    others = [stratified_holdout(KEYS, GROUPS, 0.2, seed=s)[1] for s in range(1, 6)]
    assert any(o != val for o in others)
    # The order the items are listed in does not change which keys are held out.
    order = list(range(len(KEYS)))
    random.Random(1).shuffle(order)
    shuffled = stratified_holdout([KEYS[i] for i in order], [GROUPS[i] for i in order], 0.2, seed=0)[1]
    assert {KEYS[order[i]] for i in shuffled} == {KEYS[i] for i in val}


def test_holdout_draws_no_random_numbers():
    import numpy as np
    import torch

    def seed_all() -> None:
        random.seed(5)
        np.random.seed(5)
        torch.manual_seed(5)

    seed_all()
    stratified_holdout(KEYS, GROUPS, 0.3, seed=7)
    after = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_all()
    assert after == (random.random(), np.random.rand(), torch.rand(1).item())


_CHILD = """
import json, sys
from botnet.data.split import image_folder_splits
train, val, _ = image_folder_splits(sys.argv[1], None, None, val_fraction=0.25, seed=3)
print(json.dumps([[p[len(sys.argv[1]):], t] for p, t in val.samples]))
"""


def _held_out(root) -> list[list]:
    _, val, _ = image_folder_splits(root, None, None, val_fraction=0.25, seed=3)
    return [[p[len(str(root)) :], t] for p, t in val.samples]


def test_image_folder_split_is_the_same_in_every_process_and_wherever_the_folder_is(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=9, splits=("train",))
    mine = _held_out(root)
    assert Counter(t for _, t in mine) == {0: 2, 1: 2, 2: 2}  # round(0.25 * 9) = 2 per class
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") != "2" else "3"  # another str-hash seed than this process's
    env = {**os.environ, "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "PYTHONHASHSEED": hash_seed}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(root)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == mine
    moved = shutil.copytree(root, tmp_path / "elsewhere" / "copy")
    assert _held_out(moved) == mine


def test_image_folder_split_subsets(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=("a", "b"), per_class=6, splits=("train",))
    train, val, notes = image_folder_splits(root, "train-tf", "val-tf", val_fraction=0.5, seed=0)
    assert len(train) == len(val) == 6 and not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    assert train.transform == "train-tf" and val.transform == "val-tf" and train.classes == val.classes == ["a", "b"]
    assert train.targets == [t for _, t in train.samples] and Counter(val.targets) == {0: 3, 1: 3}
    assert notes == [
        f"no val/ folder in {root}: holding out 50% of each class, seed 0: 6 of 12 images to validate "
        "(--val-fraction sets the share)"
    ]
    # Adding an image to a class moves at most one of its other images between the splits.
    before = {p for p, _ in val.samples}
    shutil.copy(root / "train" / "a" / "0.png", root / "train" / "a" / "extra.png")
    after = {p for p, _ in image_folder_splits(root, None, None, val_fraction=0.5, seed=0)[1].samples}
    assert len((before ^ after) - {str(root / "train" / "a" / "extra.png")}) <= 1


def test_val_folder_is_used_as_it_is(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=3)
    train, val, notes = image_folder_splits(root, None, None)
    assert val.split == "val" and len(train) == len(val) == 6 and notes == []
    assert image_folder_splits(root, None, None, need_train=False)[0] is None


def test_too_small_to_split_and_single_image_classes(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=4, splits=("train",))
    for name in ("1.png", "2.png", "3.png"):
        (root / "train" / "b" / name).unlink()
    with pytest.raises(DataError) as err:
        image_folder_splits(root, None, None)
    msg = str(err.value)
    assert "too small to hold out a validation set" in msg and "'b' has a single image" in msg
    assert "at least 2 images" in msg and "val/ folder" in msg and "'a'" not in msg

    with_val = write_image_folder(tmp_path / "v", classes=("a", "b"), per_class=3)
    for name in ("1.png", "2.png"):
        (with_val / "train" / "a" / name).unlink()
    train, _, notes = image_folder_splits(with_val, None, None)  # one rule for both splits: 1 training image is
    assert len(train) == 4 and "'a' has a single image to train on" in notes[0]  # taken, with a warning

    held = write_image_folder(tmp_path / "h", classes=("a", "b"), per_class=2, splits=("train",))
    train, val, notes = image_folder_splits(held, None, None)  # held out: the same single image left to train on
    assert (len(train), len(val)) == (2, 2) and "4 images (50%: at least 1 image of each class" in notes[0]
    assert "'a' has a single image, 'b' has a single image to train on" in notes[1]


def test_check_class_counts_lists_every_small_class():
    check_class_counts([2, 5], ["a", "b"], "DIR")
    check_class_counts([1, 5], ["a", "b"], "DIR")  # a val/ folder given: one training image is enough
    with pytest.raises(DataError, match=r"'a' has 0 images to train on. A class needs at least 1 training image"):
        check_class_counts([0, 5], ["a", "b"], "DIR")
    with pytest.raises(DataError, match=r"'a' has a single image, 'c' has 0 images") as err:
        check_class_counts([1, 5, 0], ["a", "b", "c"], "DIR", holdout_fraction=0.3)
    assert "--val-fraction 0.3" in str(err.value)


def test_imbalance_warning_above_ten_to_one():
    assert imbalance_message([100, 10], ["a", "b"], "X") is None  # exactly 10:1 is not above
    msg = imbalance_message([20, 101, 10], ["a", "b", "c"], "the training set X")
    assert msg.startswith("warning: class imbalance in the training set X (10.1:1, above 10:1)")
    assert "'b' has 101 images, 'c' 10" in msg and "Images per class: b 101, a 20, c 10." in msg
    assert "no objects" in imbalance_message([5, 0], ["cat", "dog"], "Y", unit="objects")
    many = imbalance_message(list(range(100, 0, -4)) + [1], [f"k{i}" for i in range(26)], "Z")
    assert "k0 100, k1 96, k2 92, k3 88, k4 84, ..., k21 16, k22 12, k23 8, k24 4, k25 1" in many
    assert imbalance_message([3], ["only"], "Z") is None


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco_shapes(tmp_path_factory.mktemp("coco") / "data", num_train=24, num_val=4, size=64, seed=0)


def test_coco_holdout_by_image(coco):
    ds = CocoDetection(coco / "train", coco / "annotations" / "instances_train.json", masks=False)
    train, val, note = coco_holdout(ds, 0.25, seed=1, train_transforms=None, val_transforms="eval")
    assert set(train.image_ids).isdisjoint(val.image_ids) and len(train) + len(val) == len(ds)
    assert sorted(train.image_ids + val.image_ids) == sorted(ds.image_ids)
    assert coco_holdout(ds, 0.25, seed=1, train_transforms=None, val_transforms=None)[1].image_ids == val.image_ids
    # Each view's COCO index holds only its own images and their annotations (COCOeval reads it).
    assert sorted(val.coco.imgs) == sorted(val.image_ids)
    assert {a["image_id"] for a in val.coco.dataset["annotations"]} <= set(val.image_ids)
    assert val.transforms == "eval" and not val.train and train.train
    assert f"holding out 25% of the images of {ds.ann_file}" in note and "seed 1" in note
    image, target = train[0]
    full = dict(zip(ds.image_ids, range(len(ds)), strict=True))
    assert target["boxes"].tolist() == ds[full[train.image_ids[0]]][1]["boxes"].tolist()


def test_detection_without_a_valid_box(coco, tmp_path):
    data = json.loads((coco / "annotations" / "instances_train.json").read_text())
    for i, ann in enumerate(data["annotations"]):
        ann["bbox"] = [0, 0, 0, 5] if i % 2 else [1000, 1000, 5, 5]  # zero width, or outside the image
    ann_file = tmp_path / "bad.json"
    ann_file.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="dropped"):
        ds = CocoDetection(coco / "train", ann_file, masks=False)
    with pytest.raises(DataError, match="no valid box to train on") as err:
        check_boxes(ds)
    n = len(data["annotations"])
    assert f"{n} annotations, of which {n} were dropped as invalid" in str(err.value)


def test_a_validation_folder_by_another_name_and_the_files_training_skips(tmp_path):
    root = write_image_folder(tmp_path / "data", per_class=3)
    (root / "val").rename(root / "valid")
    (root / "train" / "cat" / "anim.gif").write_bytes(b"GIF89a")
    (root / "train" / "cat" / "notes.txt").write_text("x")
    (root / "train" / "dog" / "b.GIF").write_bytes(b"GIF89a")
    train, val, notes = image_folder_splits(root, None, None)
    assert (len(train), val.split) == (6, "valid") and f"validating on {root / 'valid'}" in notes[-1]
    assert f"{root / 'train'}: skipped 3 file(s) that are not image types training reads (.gif 2, .txt 1)" in notes[0]
    (root / "validation").mkdir()
    with pytest.raises(DataError, match="has validation/ and valid/ beside train/: keep one"):
        image_folder_splits(root, None, None)
