"""COCO evaluation: ground truth fed back scores AP 1, shifted predictions less, empty ones 0; RLE round trip."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from botnet.data.coco import CocoDetection
from botnet.detection.coco_eval import METRIC_NAMES, coco_evaluate, format_metrics_table, to_coco_results

# (x0, y0, x1, y1, category id): one object per COCO area range in image 1 (small < 32^2 <= medium < 96^2 <= large)
OBJECTS = {
    1: [(5, 5, 15, 13, 4), (20, 40, 60, 70, 9), (20, 20, 120, 120, 4)],
    2: [(3, 3, 9, 9, 9), (40, 20, 90, 50, 9), (10, 30, 30, 40, 4)],
}
SIZES = {1: (128, 128), 2: (64, 96)}  # (height, width)
CROWD = (2, 0, 40, 96, 64)  # (image id, x0, y0, x1, y1): a crowd region of category 9 over image 2's lower rows


def _polygon(x0, y0, x1, y1) -> list[list[int]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _write_dataset(tmp_path: Path) -> CocoDetection:
    root = tmp_path / "images"
    root.mkdir()
    images, annotations = [], []
    for image_id, (h, w) in SIZES.items():
        Image.new("RGB", (w, h), (90, 120, 30)).save(root / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for x0, y0, x1, y1, cat in OBJECTS[image_id]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "segmentation": _polygon(x0, y0, x1, y1),
                    "iscrowd": 0,
                }
            )
    image_id, x0, y0, x1, y1 = CROWD
    crowd = np.zeros(SIZES[image_id], dtype=np.uint8)
    crowd[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(crowd))
    annotations.append(
        {
            "id": 100,
            "image_id": image_id,
            "category_id": 9,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": int(crowd.sum()),
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            "iscrowd": 1,
        }
    )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 9, "name": "b"}, {"id": 4, "name": "a"}],
    }
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing dropped
        return CocoDetection(root, ann_file)


@pytest.fixture
def dataset(tmp_path) -> CocoDetection:
    return _write_dataset(tmp_path)


def _targets_as_outputs(dataset: CocoDetection, shift: int = 0) -> tuple[list[dict], list[int]]:
    """The dataset's targets in the form of torchvision's detection outputs, optionally moved right by ``shift`` px."""
    outputs, image_ids = [], []
    for index in range(len(dataset)):
        _, target = dataset[index]
        boxes = target["boxes"].as_subclass(torch.Tensor) + torch.tensor([shift, 0, shift, 0])
        masks = torch.roll(target["masks"], shifts=shift, dims=-1)[:, None].float()  # (N, 1, H, W)
        n = len(boxes)
        outputs.append({"boxes": boxes, "labels": target["labels"], "scores": torch.ones(n), "masks": masks})
        image_ids.append(target["image_id"])
    return outputs, image_ids


def test_ground_truth_as_predictions_scores_ap_one(dataset) -> None:
    outputs, image_ids = _targets_as_outputs(dataset)
    results = to_coco_results(outputs, image_ids, dataset.label_to_cat_id)
    assert len(results) == 6  # the crowd region is no target
    metrics = coco_evaluate(dataset.coco, results)
    assert set(metrics) == {"bbox", "segm"}
    for iou_type in ("bbox", "segm"):
        assert list(metrics[iou_type]) == list(METRIC_NAMES)
        assert metrics[iou_type] == pytest.approx(dict.fromkeys(METRIC_NAMES, 1.0))


def test_detection_of_a_crowd_region_is_no_false_positive(dataset) -> None:
    assert dataset.coco.anns[100]["iscrowd"] == 1
    outputs, image_ids = _targets_as_outputs(dataset)
    results = [{**r, "score": 0.5} for r in to_coco_results(outputs, image_ids, dataset.label_to_cat_id)]
    crowd_box = {"image_id": 2, "category_id": 9, "bbox": [2.0, 42.0, 90.0, 20.0], "score": 1.0}  # inside the crowd
    metrics = coco_evaluate(dataset.coco, [*results, crowd_box], ("bbox",))
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
    outside = {**crowd_box, "bbox": [2.0, 2.0, 30.0, 15.0]}  # the same box away from the crowd is a false positive
    assert coco_evaluate(dataset.coco, [*results, outside], ("bbox",))["bbox"]["AP"] < 1.0


def test_shifted_predictions_score_less(dataset) -> None:
    outputs, image_ids = _targets_as_outputs(dataset, shift=4)
    results = to_coco_results(outputs, image_ids, dataset.label_to_cat_id)
    metrics = coco_evaluate(dataset.coco, results)
    for iou_type in ("bbox", "segm"):
        assert 0.0 < metrics[iou_type]["AP"] < 0.9
        assert metrics[iou_type]["APs"] < metrics[iou_type]["APl"]  # 4 px matter most to small objects
    # The numbers are pycocotools' own summary's (at COCO's 100 detections).
    gt = copy.deepcopy(dataset.coco)
    reference = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="bbox")
    reference.evaluate(), reference.accumulate(), reference.summarize()
    assert [metrics["bbox"][name] for name in METRIC_NAMES] == pytest.approx(
        [math.nan if v == -1 else v for v in reference.stats[:6]], nan_ok=True
    )


def test_wrong_categories_score_zero(dataset) -> None:
    outputs, image_ids = _targets_as_outputs(dataset)
    results = to_coco_results(outputs, image_ids, lambda label: dataset.label_to_cat_id(3 - label))  # swapped
    assert coco_evaluate(dataset.coco, results, ("bbox",))["bbox"]["AP"] == 0.0


def test_empty_predictions_score_zero(dataset, capsys) -> None:
    metrics = coco_evaluate(dataset.coco, [])
    assert metrics == {"bbox": dict.fromkeys(METRIC_NAMES, 0.0), "segm": dict.fromkeys(METRIC_NAMES, 0.0)}
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


def test_image_ids_restrict_evaluation_and_empty_area_ranges_are_nan(dataset) -> None:
    outputs, image_ids = _targets_as_outputs(dataset)
    results = [r for r in to_coco_results(outputs, image_ids, dataset.label_to_cat_id) if r["image_id"] == 2]
    assert coco_evaluate(dataset.coco, results)["bbox"]["AP"] < 1.0  # image 1's objects were all missed
    metrics = coco_evaluate(dataset.coco, results, ("bbox",), image_ids=[2])["bbox"]
    assert metrics["AP"] == pytest.approx(1.0) and metrics["APs"] == pytest.approx(1.0)
    assert math.isnan(metrics["APl"])  # image 2 has no large object
    assert format_metrics_table({"bbox": metrics}).splitlines()[1].split()[-1] == "-"


def test_evaluation_leaves_ground_truth_and_results_unchanged(dataset) -> None:
    outputs, image_ids = _targets_as_outputs(dataset)
    results = to_coco_results(outputs, image_ids, dataset.label_to_cat_id)
    results_before, gt_before = copy.deepcopy(results), copy.deepcopy(dataset.coco.dataset)
    coco_evaluate(dataset.coco, results)
    assert results == results_before
    assert dataset.coco.dataset == gt_before  # polygons not turned into RLE, no 'ignore' keys added
    _, target = dataset[0]
    assert target["masks"].sum() == sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1, _ in OBJECTS[1])


def test_verbose_lets_pycocotools_print(dataset, capsys) -> None:
    coco_evaluate(dataset.coco, [], ("bbox",), verbose=True)
    assert "Average Precision" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools' decode, NumPy 2
def test_to_coco_results_round_trips_masks_through_rle() -> None:
    probs = torch.rand(2, 1, 7, 9, generator=torch.Generator().manual_seed(0))
    output = {
        "boxes": torch.tensor([[1.0, 2.0, 4.5, 6.0], [0.0, 0.0, 9.0, 7.0]]),
        "labels": torch.tensor([2, 1]),
        "scores": torch.tensor([0.9, 0.25]),
        "masks": probs,
    }
    results = to_coco_results([output], [42], {1: 11, 2: 12}.__getitem__, mask_threshold=0.6)
    assert json.loads(json.dumps(results)) == results  # plain Python values only
    assert [r["image_id"] for r in results] == [42, 42]
    assert [r["category_id"] for r in results] == [12, 11]
    assert results[0]["bbox"] == [1.0, 2.0, 3.5, 4.0] and results[1]["bbox"] == [0.0, 0.0, 9.0, 7.0]
    assert results[0]["score"] == pytest.approx(0.9) and results[1]["score"] == pytest.approx(0.25)
    for result, prob in zip(results, probs, strict=True):
        assert isinstance(result["segmentation"]["counts"], str) and result["segmentation"]["size"] == [7, 9]
        np.testing.assert_array_equal(mask_utils.decode(result["segmentation"]), (prob[0] > 0.6).numpy())


def test_to_coco_results_without_masks_or_detections() -> None:
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
    box_only = {"boxes": torch.tensor([[1.0, 1.0, 3.0, 3.0]]), "labels": torch.tensor([1]), "scores": torch.ones(1)}
    results = to_coco_results([empty, box_only], [1, 2], lambda label: 7)
    assert results == [{"image_id": 2, "category_id": 7, "bbox": [1.0, 1.0, 2.0, 2.0], "score": 1.0}]
    masked_empty = {**empty, "masks": torch.zeros(0, 1, 5, 5)}
    assert to_coco_results([masked_empty], [1], lambda label: 7) == []


def test_bad_arguments_are_named(dataset) -> None:
    one = {"boxes": torch.ones(1, 4), "labels": torch.ones(1, dtype=torch.int64), "scores": torch.ones(1)}
    with pytest.raises(ValueError, match="got 1 outputs but 2 image ids"):
        to_coco_results([one], [1, 2], dataset.label_to_cat_id)
    with pytest.raises(ValueError, match=r"masks must have shape \(N, 1, H, W\)"):
        to_coco_results([{**one, "masks": torch.ones(1, 2, 3, 3)}], [1], dataset.label_to_cat_id)
    box_result = {"image_id": 1, "category_id": 4, "bbox": [0, 0, 2, 2], "score": 1.0}
    with pytest.raises(ValueError, match="unknown iou type 'keypoints'"):
        coco_evaluate(dataset.coco, [], ("keypoints",))
    with pytest.raises(ValueError, match="1 results' image_id are not images of the ground truth: 77"):
        coco_evaluate(dataset.coco, [{**box_result, "image_id": 77}], ("bbox",))
    with pytest.raises(ValueError, match="1 image_ids are not images of the ground truth: 3"):
        coco_evaluate(dataset.coco, [], ("bbox",), image_ids=[2, 3])
    with pytest.raises(ValueError, match="segm evaluation needs a 'segmentation' in every result"):
        coco_evaluate(dataset.coco, [box_result])


def test_format_metrics_table() -> None:
    metrics = {
        "bbox": dict(zip(METRIC_NAMES, [0.4, 0.612, 0.4449, 0.2, 0.45, math.nan], strict=True)),
        "segm": dict.fromkeys(METRIC_NAMES, 1.0),
    }
    assert format_metrics_table(metrics) == (
        "iou      AP   AP50   AP75    APs    APm    APl\n"
        "bbox   40.0   61.2   44.5   20.0   45.0      -\n"
        "segm  100.0  100.0  100.0  100.0  100.0  100.0"
    )


def _dense_image(objects: int) -> tuple[COCO, list[dict]]:
    """One 1000x1000 image with ``objects`` 20 px boxes on a grid, and each found exactly (scores descending)."""
    boxes = [[float(40 * (i % 24)), float(40 * (i // 24)), 20.0, 20.0] for i in range(objects)]
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 1000, "height": 1000}],
        "categories": [{"id": 1, "name": "nucleus"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 400.0, "iscrowd": 0}
            for i, b in enumerate(boxes)
        ],
    }
    coco.createIndex()
    results = [{"image_id": 1, "category_id": 1, "bbox": b, "score": 1 - i / 1000} for i, b in enumerate(boxes)]
    return coco, results


def test_dense_images_are_measured_at_the_detections_the_model_keeps() -> None:
    coco, results = _dense_image(150)
    # COCO's 100 detections per image find 100 of the 150 objects: precision 1 up to recall 0.66, then nothing,
    # over 101 recall thresholds; pycocotools' own summary says the same.
    capped = coco_evaluate(coco, results, ("bbox",))["bbox"]
    assert capped["AP50"] == pytest.approx(67 / 101) and capped["AP"] == pytest.approx(67 / 101)
    reference = COCOeval(coco, coco.loadRes(results), iouType="bbox")
    reference.evaluate(), reference.accumulate(), reference.summarize()
    assert [capped[name] for name in METRIC_NAMES] == pytest.approx(
        [math.nan if v == -1 else v for v in reference.stats[:6]], nan_ok=True
    )
    # A model that keeps 300 is measured at 300: every object found.
    kept = coco_evaluate(coco, results, ("bbox",), max_detections=300)["bbox"]
    assert kept["AP"] == pytest.approx(1.0) and kept["AP50"] == pytest.approx(1.0) and kept["APs"] == 1.0
    assert math.isnan(kept["APl"])  # no large objects
