"""COCO-format dataset: polygon / RLE masks, labels, crowd, bad inputs, dropped boxes; detection transforms."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

from botnet.data.coco import CocoDetection
from botnet.data.det_transforms import (
    build_detection_eval_transform,
    build_detection_train_transform,
    collate_detection,
)
from botnet.data.folder import BadSample, DataError
from botnet.data.transforms import SeededDataset

W, H = 40, 30  # image 1, non-square on purpose


def _rect_mask(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    """uint8 (h, w) mask of the pixels x0 <= x < x1, y0 <= y < y1."""
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _l_shape() -> np.ndarray:
    mask = _rect_mask(20, 3, 24, 15)
    mask[11:15, 24:30] = 1
    return mask  # bbox x 20..30, y 3..15


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE written out by hand: run lengths over the column-major pixels, starting with 0s."""
    counts, current, run = [], 0, 0
    for value in mask.T.reshape(-1).tolist():
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _mask_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


POLYGON_MASK = _rect_mask(4, 5, 14, 12)
RLE_MASK = _l_shape()
UNCOMPRESSED_MASK = _rect_mask(30, 18, 38, 28)
CROWD_MASK = _rect_mask(0, 20, 10, 30)


def _coco_dict() -> dict:
    """Two images (the second without annotations), three categories in unsorted id order, one crowd region."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H},
            {"id": 5, "file_name": "sub/b.png", "width": 20, "height": 16},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 10, "name": "bird"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "bbox": [4, 5, 10, 7],
                "segmentation": [[4, 5, 14, 5, 14, 12, 4, 12]],
                "area": 70.0,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "bbox": _mask_bbox(RLE_MASK),
                "segmentation": _compressed_rle(RLE_MASK),
                "area": float(RLE_MASK.sum()),
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 1,
                "category_id": 10,
                "bbox": _mask_bbox(UNCOMPRESSED_MASK),
                "segmentation": _uncompressed_rle(UNCOMPRESSED_MASK),
            },
            {
                "id": 4,
                "image_id": 1,
                "category_id": 3,
                "bbox": _mask_bbox(CROWD_MASK),
                "segmentation": _uncompressed_rle(CROWD_MASK),
                "area": float(CROWD_MASK.sum()),
                "iscrowd": 1,
            },
        ],
    }


def _write(tmp_path: Path, data: dict, *, skip: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Writes an image of the listed size for every entry of ``data["images"]`` and the JSON; returns (root, json)."""
    root = tmp_path / "images"
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for img in data["images"] if isinstance(data.get("images"), list) else []:
        name = img.get("file_name")
        if not isinstance(name, str) or name in skip or Path(name).is_absolute() or ".." in name:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = img.get("height"), img.get("width")
        size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else (4, 4)  # bad-input tests
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    return root, ann_file


@pytest.fixture
def dataset(tmp_path) -> CocoDetection:
    return CocoDetection(*_write(tmp_path, _coco_dict()))


def test_sample_masks_from_polygon_and_both_rles(dataset) -> None:
    image, target = dataset[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, H, W)
    expected = np.array(Image.open(dataset.root / "a.png")).transpose(2, 0, 1)
    assert torch.equal(image, torch.from_numpy(expected))

    assert target["image_id"] == 1
    assert target["labels"].tolist() == [2, 1, 3]  # categories 7, 3, 10 -> labels of the sorted ids 3, 7, 10
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
    assert boxes.canvas_size == (H, W) and boxes.dtype == torch.float32
    assert boxes.tolist() == [[4, 5, 14, 12], [20, 3, 30, 15], [30, 18, 38, 28]]
    masks = target["masks"]
    assert isinstance(masks, tv_tensors.Mask) and masks.dtype == torch.uint8 and masks.shape == (3, H, W)
    for got, want in zip(masks, [POLYGON_MASK, RLE_MASK, UNCOMPRESSED_MASK], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    assert target["iscrowd"].tolist() == [0, 0, 0]
    assert target["area"].tolist() == [70.0, float(RLE_MASK.sum()), float(UNCOMPRESSED_MASK.sum())]  # 3rd computed


def test_labels_are_contiguous_in_sorted_category_order(dataset) -> None:
    assert dataset.cat_ids == [3, 7, 10]
    assert dataset.classes == ["dog", "cat", "bird"]
    assert [dataset.label_to_cat_id(label) for label in (1, 2, 3)] == [3, 7, 10]
    for label in (0, 4):
        with pytest.raises(ValueError, match="1..3"):
            dataset.label_to_cat_id(label)
    assert dataset.image_ids == [1, 5] and len(dataset) == 2


def test_crowd_left_out_of_training_targets_but_kept_for_evaluation(dataset, tmp_path) -> None:
    _, target = dataset[0]
    assert len(target["labels"]) == 3 and not target["iscrowd"].any()
    assert dataset.coco.anns[4]["iscrowd"] == 1
    assert sorted(dataset.coco.getAnnIds(imgIds=[1])) == [1, 2, 3, 4]

    _, eval_target = CocoDetection(dataset.root, dataset.ann_file, train=False)[0]
    assert eval_target["iscrowd"].tolist() == [0, 0, 0, 1]
    np.testing.assert_array_equal(eval_target["masks"][3].numpy(), CROWD_MASK)


def test_image_without_annotations_gives_empty_targets(dataset) -> None:
    image, target = dataset[1]
    assert image.shape == (3, 16, 20)
    assert target["boxes"].shape == (0, 4) and target["boxes"].canvas_size == (16, 20)
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["masks"].shape == (0, 16, 20)
    assert target["area"].shape == (0,) and target["iscrowd"].shape == (0,)


def test_without_masks_segmentation_is_optional(tmp_path) -> None:
    data = _coco_dict()
    del data["annotations"][0]["segmentation"]
    root, ann_file = _write(tmp_path, data)
    # The way out is named as a command-line user takes it, not as a Python argument.
    with pytest.raises(DataError, match=r"annotation id 1 has no segmentation .*leave --model out .*fasterrcnn_\*"):
        CocoDetection(root, ann_file)
    _, target = CocoDetection(root, ann_file, masks=False)[0]
    assert "masks" not in target and len(target["boxes"]) == 3


def _set(path: tuple, value):
    def edit(data: dict) -> None:
        *parents, key = path
        node = data
        for p in parents:
            node = node[p]
        node[key] = value

    return edit


def _delete(path: tuple):
    def edit(data: dict) -> None:
        *parents, key = path
        node = data
        for p in parents:
            node = node[p]
        del node[key]

    return edit


def _append(section: str, entry: dict):
    return lambda data: data[section].append(entry)


BAD_INPUTS = {
    "unknown category": (_set(("annotations", 1, "category_id"), 99), r"annotation id 2 .*99.*valid ids: 3, 7, 10"),
    "unknown image": (_set(("annotations", 2, "image_id"), 42), r"annotation id 3 has image_id 42"),
    "no categories": (_delete(("categories",)), r"top-level 'categories' list"),
    "images not a list": (_set(("images",), {"id": 1}), r"'images' list, found a dict"),
    "image without width": (_delete(("images", 0, "width")), r"image id 1 has no 'width' key"),
    "annotation without bbox": (_delete(("annotations", 2, "bbox")), r"annotation id 3 has no 'bbox' key"),
    "category without name": (_delete(("categories", 1, "name")), r"category id 3 has no 'name' key"),
    "entry without id": (_delete(("annotations", 0, "id")), r"annotations\[0\] has no 'id' key"),
    "bbox a string": (_set(("annotations", 1, "bbox"), "1,2,3,4"), r"annotation id 2 has bbox='1,2,3,4', expected"),
    "bbox of 3 numbers": (_set(("annotations", 1, "bbox"), [1, 2, 3]), r"annotation id 2 has bbox=\[1, 2, 3\]"),
    "image_id a string": (_set(("annotations", 0, "image_id"), "1"), r"annotation id 1 has image_id='1'"),
    "zero width": (_set(("images", 1, "width"), 0), r"image id 5 has width=0, expected a positive integer"),
    "float height": (_set(("images", 1, "height"), 16.0), r"image id 5 has height=16.0"),
    "bool id": (_set(("categories", 0, "id"), True), r"categories\[0\] has id=True, expected an integer"),
    "name not a string": (_set(("categories", 2, "name"), 5), r"category id 10 has name=5, expected a string"),
    "iscrowd 2": (_set(("annotations", 0, "iscrowd"), 2), r"annotation id 1 has iscrowd=2, expected 0 or 1"),
    "duplicate image id": (
        _append("images", {"id": 5, "file_name": "c.png", "width": 4, "height": 4}),
        r"duplicate image id 5",
    ),
    "duplicate annotation id": (
        _append("annotations", {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "segmentation": []}),
        r"duplicate annotation id 3",
    ),
    "duplicate category id": (_append("categories", {"id": 7, "name": "lion"}), r"duplicate category id 7"),
    "rle of another size": (
        _set(("annotations", 2, "segmentation", "size"), [W, H]),
        r"annotation id 3 has an RLE segmentation with size \[40, 30\].*\[30, 40\]",
    ),
    "odd polygon": (
        _set(("annotations", 0, "segmentation"), [[4, 5, 14, 5, 14]]),
        r"annotation id 1 has a segmentation polygon",
    ),
    "segmentation a string": (_set(("annotations", 0, "segmentation"), "x"), r"annotation id 1 has segmentation of"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_annotation_file_names_entry_and_key(tmp_path, name) -> None:
    edit, message = BAD_INPUTS[name]
    data = _coco_dict()
    edit(data)
    root, ann_file = _write(tmp_path, data)
    with pytest.raises(DataError, match=message) as info:
        CocoDetection(root, ann_file)
    assert str(ann_file) in str(info.value)


def test_unreadable_json(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(DataError, match="not valid JSON"):
        CocoDetection(tmp_path / "images", tmp_path / "bad.json")
    with pytest.raises(DataError, match="does not exist"):
        CocoDetection(tmp_path / "images", tmp_path / "missing.json")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_file_name_outside_root_is_refused(tmp_path, kind) -> None:
    outside = tmp_path / "outside.png"
    Image.new("RGB", (20, 16)).save(outside)
    data = _coco_dict()
    name = {"dotdot": "../outside.png", "absolute": str(outside), "symlink": "link.png"}[kind]
    data["images"][1]["file_name"] = name
    root, ann_file = _write(tmp_path, data, skip=("link.png",))
    if kind == "symlink":
        (root / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match=rf"image id 5 has file_name '{name}', which is outside the image folder"):
        CocoDetection(root, ann_file)


def test_missing_image_files_are_named(tmp_path) -> None:
    data = _coco_dict()
    data["images"] += [{"id": 10 + i, "file_name": f"m{i}.png", "width": 4, "height": 4} for i in range(6)]
    root, ann_file = _write(tmp_path, data, skip=("sub/b.png", *(f"m{i}.png" for i in range(6))))
    with pytest.raises(DataError, match=r"7 of 8 image files .* missing") as info:
        CocoDetection(root, ann_file)
    assert str(root / "sub/b.png") in str(info.value)
    assert str(info.value).count(str(root)) == 6  # the root once, then 5 of the 7 paths


def test_bad_boxes_and_polygons_dropped_with_one_counted_warning(tmp_path) -> None:
    data = _coco_dict()
    bad = {
        20: [3, 3, 0, 5],  # zero width
        21: [3, 3, 5, -1],  # negative height
        22: [math.nan, 3, 5, 5],
        23: [W + 2, 3, 5, 5],  # right of the image
        24: [-8, -8, 5, 5],  # above-left of the image
    }
    for ann_id, bbox in bad.items():
        data["annotations"].append({"id": ann_id, "image_id": 1, "category_id": 3, "bbox": bbox, "segmentation": []})
    data["annotations"].append(  # a polygon of 2 points
        {"id": 25, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 5]]}
    )
    data["annotations"].append(  # sticks out of the image: clipped, kept
        {"id": 26, "image_id": 5, "category_id": 3, "bbox": [-2, 10, 6, 10], "segmentation": [[0, 10, 4, 10, 4, 16]]}
    )
    data["annotations"].append(  # one good polygon and one of 2 points: the short one is removed
        {
            "id": 27,
            "image_id": 5,
            "category_id": 7,
            "bbox": [10, 2, 4, 4],
            "segmentation": [[10, 2, 11, 3], [10, 2, 14, 2, 14, 6, 10, 6]],
        }
    )
    root, ann_file = _write(tmp_path, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = CocoDetection(root, ann_file)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message == (
        f"dropped 6 of 12 annotations in {ann_file}: 1 with non-finite box values, 2 with non-positive width/height, "
        "2 outside the image, 1 with a polygon of fewer than 3 points (annotation ids 20, 21, 22, 23, 24, 25)"
    )
    assert dataset.dropped == {
        "non-finite box": 1,
        "non-positive width/height": 2,
        "outside the image": 2,
        "polygon with fewer than 3 points": 1,
    }
    assert not set(bad) & set(dataset.coco.anns) and 25 not in dataset.coco.anns

    _, target = dataset[1]
    assert target["boxes"].tolist() == [[0, 10, 4, 16], [10, 2, 14, 6]]
    assert dataset.coco.anns[26]["bbox"] == [0, 10, 4, 6]
    assert dataset.coco.anns[27]["segmentation"] == [[10, 2, 14, 2, 14, 6, 10, 6]]
    np.testing.assert_array_equal(target["masks"][1].numpy(), _rect_mask(10, 2, 14, 6, h=16, w=20))


def test_clean_file_gives_no_warning(tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert CocoDetection(*_write(tmp_path, _coco_dict())).dropped == {}


def test_undecodable_image_gives_bad_sample_without_transforms(tmp_path) -> None:
    root, ann_file = _write(tmp_path, _coco_dict())
    (root / "sub/b.png").write_bytes(b"")

    def must_not_run(image, target):
        raise AssertionError("transforms ran on a bad sample")

    dataset = CocoDetection(root, ann_file, transforms=must_not_run)
    sample = dataset[1]
    assert isinstance(sample, BadSample) and sample.path == str(root / "sub/b.png")
    assert "UnidentifiedImageError" in sample.reason


def test_image_size_differing_from_json_is_an_error(tmp_path) -> None:
    root, ann_file = _write(tmp_path, _coco_dict())
    Image.new("RGB", (21, 16)).save(root / "sub/b.png")
    with pytest.raises(DataError, match=rf"image {root / 'sub/b.png'} is 21x16 pixels .* width 20 and height 16"):
        CocoDetection(root, ann_file)[1]


# Detection transforms -------------------------------------------------------------------------------------------


def _boxes_dataset(tmp_path: Path) -> CocoDetection:
    """One 96x64 image with rectangles of assorted sizes (RLE and polygon masks) and an L shape."""
    h, w = 64, 96
    rects = [(5, 5, 30, 20), (40, 10, 90, 60), (2, 40, 12, 62), (70, 2, 94, 14), (30, 30, 50, 45)]
    annotations = []
    for i, (x0, y0, x1, y1) in enumerate(rects):
        mask = _rect_mask(x0, y0, x1, y1, h=h, w=w)
        segmentation = [[x0, y0, x1, y0, x1, y1, x0, y1]] if i % 2 else _compressed_rle(mask)
        bbox = _mask_bbox(mask)
        annotations.append(
            {"id": i + 1, "image_id": 1, "category_id": 1 + i % 2, "bbox": bbox, "segmentation": segmentation}
        )
    data = {
        "images": [{"id": 1, "file_name": "big.png", "width": w, "height": h}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": annotations,
    }
    return CocoDetection(*_write(tmp_path, data))


def _check_consistent(image, target, size: int) -> None:
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    n = len(target["boxes"])
    assert target["labels"].shape == (n,) and target["area"].shape == (n,) and target["iscrowd"].shape == (n,)
    assert target["masks"].shape == (n, size, size)
    assert target["boxes"].canvas_size == (size, size)
    for box, mask in zip(target["boxes"], target["masks"], strict=True):
        assert (box[2:] - box[:2] >= 1).all()
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert len(xs), f"box {box.tolist()} has an empty mask"
        mask_box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        assert torch.allclose(mask_box, box, atol=2.0), (mask_box.tolist(), box.tolist())


@pytest.mark.parametrize("scale_range", [(0.8, 1.25), (0.3, 0.5), (2.0, 3.0)])
def test_train_transform_keeps_boxes_masks_and_labels_together(tmp_path, scale_range) -> None:
    dataset = _boxes_dataset(tmp_path)
    dataset.transforms = build_detection_train_transform(64, scale_range=scale_range)
    counts = set()
    for seed in range(8):
        torch.manual_seed(seed)
        image, target = dataset[0]
        _check_consistent(image, target, 64)
        counts.add(len(target["boxes"]))
        if scale_range[1] < 1:  # the image is padded: zeros right and below the jittered image
            assert image[:, -1, :].abs().sum() == 0 and target["masks"][:, -1, :].sum() == 0
    if scale_range[0] >= 2:
        assert min(counts) < 5  # the crop cut some boxes away, with their labels and masks


def test_train_transform_flip_mirrors_boxes(tmp_path) -> None:
    dataset = _boxes_dataset(tmp_path)
    raw_image, raw_target = dataset[0]
    dataset.transforms = build_detection_train_transform(96, scale_range=(1.0, 1.0), hflip=1.0, fixed_size=False)
    image, target = dataset[0]
    assert image.shape == (3, 64, 96)
    torch.testing.assert_close(image, raw_image.flip(-1).float() / 255)
    expected = raw_target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([96, 0, 96, 0])
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor))
    assert torch.equal(target["masks"], raw_target["masks"].flip(-1))


def test_seeded_train_samples_are_reproducible(tmp_path) -> None:
    dataset = _boxes_dataset(tmp_path)
    dataset.transforms = build_detection_train_transform(64)
    first, second = SeededDataset(dataset, seed=3), SeededDataset(dataset, seed=3)
    image_a, target_a = first[0]
    image_b, target_b = second[0]
    assert torch.equal(image_a, image_b)
    assert torch.equal(target_a["boxes"], target_b["boxes"]) and torch.equal(target_a["masks"], target_b["masks"])
    second.set_epoch(1)
    assert not torch.equal(second[0][0], image_a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale_range": (0.0, 1.0)}, "scale_range"),
        ({"scale_range": (1.25, 0.8)}, "scale_range"),
        ({"scale_range": (1.0, 5.0)}, "scale_range"),
        ({"hflip": 1.5}, "hflip"),
        ({"size": 16}, "size must be an integer >= 32"),
    ],
)
def test_train_transform_rejects_bad_options(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        build_detection_train_transform(**{"size": 64, **kwargs})


def test_eval_transform_only_converts_the_image(dataset) -> None:
    raw_image, raw_target = dataset[0]
    image, target = build_detection_eval_transform()(raw_image, raw_target)
    assert image.dtype == torch.float32 and image.shape == raw_image.shape
    torch.testing.assert_close(image, raw_image.float() / 255)
    assert torch.equal(target["boxes"], raw_target["boxes"]) and target["masks"].dtype == torch.uint8


def test_collate_detection_drops_bad_samples(dataset) -> None:
    bad = BadSample("x.png", "OSError: truncated")
    images, targets, dropped = collate_detection([dataset[0], bad, dataset[1]])
    assert [img.shape for img in images] == [(3, H, W), (3, 16, 20)]
    assert [t["image_id"] for t in targets] == [1, 5] and dropped == [bad]
    assert collate_detection([bad]) == ([], [], [bad])
