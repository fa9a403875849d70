"""Dataset descriptions: counts, balance and sizes from file headers (ImageFolder) or the annotation file (COCO)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFile

from botnet.data.describe import Spread, describe_coco, describe_coco_file, describe_image_folder, even_sample
from botnet.data.folder import DataError

SIZES = {"a": [(10, 20), (30, 40), (50, 60)], "b": [(8, 8)] * 7}


@pytest.fixture
def folder(tmp_path):
    for name, sizes in SIZES.items():
        (tmp_path / "train" / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            Image.new("RGB", (w, h), (i * 20, 0, 0)).save(tmp_path / "train" / name / f"{i}.png")
    return tmp_path


def test_spread_matches_numpy():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    s = Spread.of(values)
    assert (s.count, s.min, s.max) == (8, 1.0, 9.0)
    assert [s.p10, s.median, s.p90] == pytest.approx(np.percentile(values, [10, 50, 90]).tolist())
    assert s.mean == pytest.approx(np.mean(values))
    assert Spread.of([]) is None


def test_image_folder_counts_and_header_sizes_without_decoding(folder, monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    d = describe_image_folder(folder)
    assert (d.task, d.num_images, d.classes, d.class_counts) == ("classification", 10, ("a", "b"), (3, 7))
    assert d.imbalance == pytest.approx(7 / 3)
    widths = [w for sizes in SIZES.values() for w, _ in sizes]
    heights = [h for sizes in SIZES.values() for _, h in sizes]
    assert (d.widths.min, d.widths.max, d.widths.median) == (8, 50, np.median(widths))
    assert (d.heights.min, d.heights.max, d.heights.mean) == (8, 60, pytest.approx(np.mean(heights)))
    assert d.sizes_read == 10 and d.unreadable == 0 and d.objects_per_image is None
    assert "10 images, 2 classes; images per class: a 3, b 7 (imbalance 2.33:1)" in d.summary()


def test_large_sets_read_an_even_sample_of_headers(folder):
    assert even_sample(10, 3) == [0, 4, 9] and even_sample(4, 10) == [0, 1, 2, 3] and even_sample(5, 1) == [0]
    d = describe_image_folder(folder, max_headers=3)
    # Files in class order: a/0 (10x20), a/1, a/2, b/0..b/6; indices 0, 4, 9 are a/0, b/1, b/6.
    assert d.sizes_read == 3 and d.num_images == 10 and d.class_counts == (3, 7)
    assert (d.widths.min, d.widths.max, d.heights.max) == (8, 10, 20)
    assert "from 3 of 10 images" in d.summary()


def test_unreadable_headers_are_counted(folder):
    (folder / "train" / "b" / "broken.png").write_bytes(b"not an image")
    d = describe_image_folder(folder)
    assert d.num_images == 11 and d.sizes_read == 11 and d.unreadable == 1 and d.widths.count == 10


def _coco() -> dict:
    images = [
        {"id": 1, "file_name": "1.png", "width": 100, "height": 50},
        {"id": 2, "file_name": "2.png", "width": 40, "height": 40},
        {"id": 3, "file_name": "3.png", "width": 60, "height": 80},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 20]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [50, 10, 50, 40]},
        {"id": 3, "image_id": 2, "category_id": 7, "bbox": [5, 5, 20, 10]},
        {"id": 4, "image_id": 2, "category_id": 7, "bbox": [0, 0, 10, 10], "iscrowd": 1},  # crowd: not an object
        {"id": 5, "image_id": 2, "category_id": 3, "bbox": [1, 1, 0, 4]},  # zero width
        {"id": 6, "image_id": 2, "category_id": 3, "bbox": [45, 0, 10, 10]},  # outside the 40 px image
    ]
    cats = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    return {"images": images, "annotations": anns, "categories": cats}


def test_coco_objects_and_relative_sizes():
    d = describe_coco(_coco())
    assert (d.task, d.num_images, d.classes, d.class_counts) == ("detection", 3, ("cat", "dog"), (1, 2))
    assert d.images_without_objects == 1
    assert (d.objects_per_image.min, d.objects_per_image.max, d.objects_per_image.mean) == (0, 2, 1.0)
    relative = [math.sqrt(200 / 5000), math.sqrt(2000 / 5000), math.sqrt(200 / 1600)]  # by hand
    assert d.object_sizes.count == 3
    assert (d.object_sizes.min, d.object_sizes.max) == pytest.approx((min(relative), max(relative)))
    assert d.object_sizes.median == pytest.approx(sorted(relative)[1])
    assert (d.widths.min, d.widths.max, d.heights.max, d.sizes_read) == (40, 100, 80, 3)


def test_coco_file(tmp_path):
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(_coco()))
    assert describe_coco_file(path) == describe_coco(_coco())
    data = _coco()
    del data["images"][0]["width"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="image id 1 has no 'width' key"):
        describe_coco_file(path)


def test_box_orientation_is_per_class_and_masks_are_counted():
    # Class 1 all wider than tall, class 2 all taller than wide: half the boxes are wide, but each class is one way.
    data = {
        "images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.png"}],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": 1 + i % 2, "bbox": [0, 0, 30, 10] if i % 2 == 0 else [0, 0, 10, 30]}
            for i in range(8)
        ],
    }
    assert describe_coco(data).box_orientation == 1.0
    for i, ann in enumerate(data["annotations"]):  # each class: 2 wide, 1 tall, 1 square -> |2 * 2.5/4 - 1| = 0.25
        ann["bbox"] = [[0, 0, 30, 10], [0, 0, 30, 10], [0, 0, 10, 30], [0, 0, 20, 20]][i // 2]
    data["annotations"][0]["segmentation"] = [[0, 0, 30, 0, 30, 10]]
    data["annotations"][1]["segmentation"] = []
    desc = describe_coco(data)
    assert desc.box_orientation == pytest.approx(0.25)
    assert (desc.num_objects, desc.objects_with_masks) == (8, 1)
