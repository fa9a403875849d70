"""botnet detect train's auto values: rules over the annotations, the built-in dataset through the same rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from botnet.data.coco_shapes import write_coco_shapes
from botnet.data.describe import describe_coco
from botnet.data.symmetry import layout_asymmetry
from botnet.detection.config import DetectConfig
from botnet.detection.recipe import (
    DetectFacts,
    anchors,
    data_rules,
    detection_image_size,
    facts_from,
    max_detections,
    memory_ceiling,
    resolve_detect,
    size_for_time,
)
from botnet.engine.config import build_config
from botnet.engine.distributed import DistInfo

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def rules(facts, memory=16 * 2**30, **given):
    return data_rules(build_config(config_cls=DetectConfig, **given).replace(workers=0), facts, 1, memory=memory)


def facts(images, side, small, objects=None, masked=None):
    """Facts of ``images`` images with 3 objects each (all with masks unless ``masked`` says otherwise)."""
    objects = 3 * images if objects is None else objects
    return DetectFacts(images, side, small, objects, objects if masked is None else masked)


def test_builtin_sized_data_gets_the_builtin_recipe():
    # The built-in dataset's facts (3,000 images of 128 px, small objects at 0.148 of the side).
    cfg, reasons = rules(facts(3000, 128.0, 0.1484375))
    assert (cfg.image_size, cfg.batch_size, cfg.lr, cfg.epochs, cfg.warmup_epochs) == (128, 8, 0.08, 8, 0.5)
    assert cfg.anchor_sizes == (16, 32, 64, 128, 256) and "19 px at 128 px" in reasons["anchor_sizes"]
    assert "from random weights" in reasons["lr"]


def test_rules_over_the_data():
    few, reasons = rules(facts(117, 128.0, 0.07))  # 117 microscopy tiles, small nuclei
    # 351 objects: 264 x sqrt(351) = 4,946 images seen, 618 steps of 8, 44 epochs of 14 steps.
    assert (few.batch_size, few.epochs, few.anchor_sizes) == (8, 44, (8, 16, 32, 64, 128))
    # 14 steps an epoch: the 100-step warm-up floor is 7.14 epochs, within a fifth of the 44.
    assert few.warmup_epochs == pytest.approx(7.1429)
    assert reasons["warmup_epochs"] == "100 steps (7.14 epochs), the least a warm-up gets"
    _, reasons = rules(facts(36, 128.0, 0.07, objects=36), batch_size=4, lr=0.02)  # 396 steps: 20% cap
    assert reasons["warmup_epochs"] == "20% of the 44-epoch schedule"
    photos, reasons = rules(facts(400, 128.0, 0.19))  # 50 steps an epoch: 100 steps are 2 epochs
    assert photos.warmup_epochs == 2.0 and reasons["warmup_epochs"] == "100 steps (2 epochs), the least a warm-up gets"
    tiny, _ = rules(facts(30, 128.0, 0.2))  # 30 images: batch 4 (the floor; 7 steps an epoch)
    assert tiny.batch_size == 4 and tiny.lr == pytest.approx(0.04)
    # Large images scaled down to where the small objects are 32 px: 640 px, if memory allows (200 GiB); botnet50
    # at batch 8 in 16 GiB is capped at 352 px.
    big, reasons = rules(facts(5000, 2000.0, 0.05), memory=200 * 2**30, model="maskrcnn_botnet50_fpn")
    assert big.image_size == 640 and big.anchor_sizes == (32, 64, 128, 256, 512)
    assert "scaled down to where the small objects (10th percentile, 100 px) are 32 px" in reasons["image_size"]
    capped, reasons = rules(facts(5000, 2000.0, 0.05), model="maskrcnn_botnet50_fpn")
    assert capped.image_size == 352 and "capped at 352 px by memory" in reasons["image_size"]
    pre, reasons = rules(facts(400, 128.0, 0.2), weights_backbone="some.safetensors")
    assert pre.lr == pytest.approx(0.02 / 16 * 8) and "pretrained" in reasons["lr"]


def test_the_schedule_follows_the_objects_not_the_images():
    # 36 photos of 558 objects: 264 x sqrt(558) = 6,236 images seen, 1,559 steps of 4 images, 173 epochs of 9 steps;
    # the same photos with one object each get 1,584 images seen.
    dense, reasons = rules(facts(36, 400.0, 0.04, objects=558, masked=0))
    assert (dense.batch_size, dense.epochs) == (4, 173)
    assert reasons["epochs"] == "1,557 optimizer steps (264 x sqrt(558 objects) images seen, at 4 per step)"
    sparse, _ = rules(facts(36, 400.0, 0.04, objects=36, masked=0))
    assert sparse.epochs == 44  # 1,584 / 4 / 9
    builtin, _ = rules(facts(3000, 128.0, 0.148, objects=8294))  # the built-in dataset: 8 epochs of 375 steps
    assert builtin.epochs == 8


def test_given_values_stand():
    cfg, reasons = rules(facts(400, 128.0, 0.2), batch_size=4, anchor_sizes=(8, 16, 32, 64, 128), epochs=3)
    assert (cfg.batch_size, cfg.anchor_sizes, cfg.epochs, cfg.lr) == (4, (8, 16, 32, 64, 128), 3, 0.04)
    assert not {"batch_size", "anchor_sizes", "epochs"} & set(reasons)


def test_anchor_rule_never_goes_below_the_finest_stride():
    assert anchors(0.001, 128)[0] == (4, 8, 16, 32, 64)
    assert anchors(None, 128)[0] is None


def test_image_size_from_the_objects_and_the_images():
    # Tiny objects in large photos: the images' own size is what it takes, and memory caps it.
    size, reason = detection_image_size(4000.0, 0.005, ceiling=704, fallback=128)
    assert size == 704 and "the images' own size" in reason and "below 32 px" in reason and "capped at 704" in reason
    # Small objects in 400 px photos: their own size, rounded up to the stride (never the model's nominal 128).
    size, reason = detection_image_size(400.0, 0.04, ceiling=2048, fallback=128)
    assert size == 416 and "where the small objects (10th percentile) are 16 px" in reason
    # Large objects in small images: scaled down, but not below 128 px.
    assert detection_image_size(200.0, 0.5, ceiling=2048, fallback=128) == (
        128,
        "images of median longer side 200 px scaled down to where the small objects (10th percentile, 100 px) are "
        "64 px (at least 128 px)",
    )
    # Images smaller than 128 px keep their size; no objects: the images' size; unknown sizes: the fallback.
    assert detection_image_size(64.0, 0.3, ceiling=2048, fallback=128)[0] == 64
    assert detection_image_size(300.0, None, ceiling=2048, fallback=128)[0] == 320
    assert detection_image_size(None, 0.1, ceiling=2048, fallback=1024)[0] == 1024
    # The memory ceiling: a quarter of the memory for a batch at the measured bytes per pixel, a multiple of 32.
    assert memory_ceiling(16 * 2**30, 8, 1024) == 704  # sqrt(4 GiB / 8 KiB) = 724
    assert memory_ceiling(16 * 2**30, 1, 1024) == 2048
    assert memory_ceiling(2**20, 8, 4096) == 32


def test_the_head_follows_the_annotations():
    cfg, reasons = rules(facts(100, 400.0, 0.1))
    assert (
        cfg.model == "maskrcnn_botnet_tiny_fpn"
        and "every one of the 300 training objects has a mask" in reasons["model"]
    )
    cfg, reasons = rules(facts(100, 400.0, 0.1, masked=0))
    assert cfg.model == "fasterrcnn_botnet_tiny_fpn" and "have boxes and no masks: boxes only" in reasons["model"]
    cfg, reasons = rules(facts(100, 400.0, 0.1, masked=120))
    assert cfg.model == "fasterrcnn_botnet_tiny_fpn"
    assert reasons["model"].startswith("180 of the 300 training objects have no mask (120 have one): boxes only")
    cfg, reasons = rules(facts(100, 400.0, 0.1, masked=0), model="fasterrcnn_botnet50_fpn")
    assert cfg.model == "fasterrcnn_botnet50_fpn" and "model" not in reasons
    with pytest.raises(
        ValueError,
        match=r"--model maskrcnn_botnet50_fpn predicts masks, but 300 of the 300 .* no "
        r"segmentation; leave --model out .* or give --model fasterrcnn_botnet50_fpn",
    ):
        rules(facts(100, 400.0, 0.1, masked=0), model="maskrcnn_botnet50_fpn")


def test_facts_from_annotations_take_off_the_held_out_share():
    data = {
        "images": [{"id": i, "width": 200, "height": 100, "file_name": f"{i}.png"} for i in range(10)],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 20 + i, 10], "iscrowd": 0} for i in range(10)
        ],
    }
    data["annotations"][0]["segmentation"] = [[0, 0, 20, 0, 20, 10]]
    data["annotations"][1]["segmentation"] = []  # what box-only exporters write: no mask
    found = facts_from(describe_coco(data), 0.8)
    assert (found.images, found.side, found.objects, found.masked_objects) == (8, 200.0, 8, 1)
    # The small objects' side relative to the longer image side: 10th percentile of sqrt(w * h) / 200, interpolated
    # between the two smallest boxes.
    small, next_small = (20 * 10) ** 0.5 / 200, (21 * 10) ** 0.5 / 200
    assert found.small_object == pytest.approx(small + 0.9 * (next_small - small))


def test_resolve_announces_the_recipe(capsys):
    cfg, reasons, _ = resolve_detect(build_config(config_cls=DetectConfig), CPU, facts=facts(400, 128.0, 0.19))
    err = capsys.readouterr().err
    assert "recipe (auto values; set any option to override)" in err
    assert "lr 0.08: sgd 0.08 per 8 images, batch 8, from random weights" in err
    assert cfg.epochs == 23 and set(reasons) >= {"image_size", "batch_size", "lr", "epochs", "anchor_sizes"}


def test_turns_and_flips_when_the_data_looks_alike_turned():
    overhead = DetectFacts(40, 400.0, 0.05, 800, 0, 60, box_orientation=0.17, layout=None)
    cfg, reasons = rules(overhead)
    assert (cfg.rot90, cfg.vflip) == (True, 0.0)
    assert "looks alike turned" in reasons["rot90"] and "no common layout" in reasons["rot90"]
    assert reasons["vflip"] == "quarter turns and horizontal flips give every flip already"
    assert rules(overhead, hflip=0.0)[0].vflip == 0.5
    # Upright objects (most boxes of a class taller than wide), or photos with a top and a bottom: neither.
    upright, reasons = rules(DetectFacts(40, 400.0, 0.05, 800, 0, 60, box_orientation=0.7))
    assert (upright.rot90, upright.vflip) == (False, 0.0) and "mostly one way (orientation 0.70" in reasons["rot90"]
    sky, reasons = rules(DetectFacts(40, 400.0, 0.05, 800, 0, 60, box_orientation=0.1, layout=(0.9, 0.2)))
    assert not sky.rot90 and "have a top and a bottom" in reasons["rot90"] and reasons["vflip"].startswith("off: ")
    assert rules(overhead, rot90=False, vflip=0.25)[0].vflip == 0.25  # given values stand


def test_detections_per_image_follow_the_densest_image():
    assert max_detections(15) == (100, "torchvision's 100 (a training image has at most 15 objects)")
    assert max_detections(67)[0] == 200 and max_detections(183)[0] == 300
    cfg, reasons = rules(DetectFacts(16, 1100.0, 0.02, 2500, 0, 183))
    assert cfg.max_detections == 300 and "up to 183 objects: 1.5 x that" in reasons["max_detections"]


def test_layout_asymmetry_of_constructed_images():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 16)[:, None] * np.ones((1, 16))  # bright at the bottom: sky-and-ground photos
    photos = [ramp + 0.05 * rng.standard_normal((16, 16)) for _ in range(40)]
    up_down, left_right = layout_asymmetry(photos)
    assert up_down > 0.9 and left_right < 0.1
    anywhere = [rng.random((16, 16)) for _ in range(40)]  # content anywhere: no common layout
    assert layout_asymmetry(anywhere) is None
    blob = np.zeros((16, 16))
    blob[6:10, 6:10] = 1  # a centred layout: the same flipped either way
    assert layout_asymmetry([blob + 0.05 * rng.standard_normal((16, 16)) for _ in range(40)])[0] < 0.05


def test_a_time_bound_trades_size_for_steps_when_few_fit():
    # Nuclei 2% of 1120 px frames (22 px): 36 steps fit, far below 500; down to where they are 16 px, not further.
    size, reason = size_for_time(1120, 36, 0.02)
    assert size == 800 and "--time fits 36 optimizer steps at 1120 px, fewer than the 500 a run needs" in reason
    assert "small objects (10th percentile) are 16 px, 16 or more" in reason
    # Large objects: the size shrinks by the square root of the missing share (a quarter of the steps: half the side).
    assert size_for_time(1024, 125, 0.2)[0] == 512
    assert size_for_time(1024, 10, 0.5)[0] == 128  # never below the smallest size
    assert size_for_time(1024, 500, 0.02) is None  # enough steps fit
    assert size_for_time(800, 36, 0.02) is None  # at the small objects' floor already
    assert size_for_time(1024, 36, None) is None  # no objects to size by


def test_a_time_bound_rebuilds_the_run_at_the_smaller_size(tmp_path, monkeypatch):
    from botnet.detection.trainer import DetectionTrainer
    from botnet.engine import loop

    root = write_coco_shapes(tmp_path / "data", num_train=8, num_val=2, size=512, seed=0)
    timed = []

    def fake_step(trainer, epoch=False):  # a step's time grows with the pixels: 2 s at 512 px
        timed.append(trainer.cfg.image_size)
        return 2 * (trainer.cfg.image_size / 512) ** 2, 0.0, 0.0, None

    monkeypatch.setattr(loop, "time_one_step", fake_step)
    cfg = build_config(config_cls=DetectConfig, data=str(root), time=1.0, workers=0)
    with DetectionTrainer(cfg.replace(output=str(tmp_path / "run")), CPU, resume=False, overwrite=False) as trainer:
        reasons = trainer.auto_reasons
        # 512 px (the images' own, small objects 28 px) fits 22 steps of a minute: down to where they are 16 px.
        assert timed == [512, 320] and trainer.cfg.image_size == 320  # timed again at the new size
        assert reasons["image_size"].startswith("--time fits 22 optimizer steps at 512 px, fewer than the 500")
        assert "; the rule: the images' own size" in reasons["image_size"]
        assert trainer.cfg.anchor_sizes == anchors(trainer.facts.small_object, 320)[0]
        assert reasons["anchor_sizes"].endswith("px at 320 px; doubling per FPN level")
        assert trainer.model.transform.max_size == 320 and max(trainer.train_ds[0][0].shape[1:]) <= 320
        assert trainer.cfg.epochs == 29 and "29 of the rule's 162 epochs" in reasons["epochs"]  # fit at 320 px
    assert "image_size: 320  # auto: --time fits " in (tmp_path / "run" / "config.yaml").read_text()
    # Sizes the user gave stand.
    timed.clear()
    cfg = cfg.replace(image_size=512, output=str(tmp_path / "given"))
    with DetectionTrainer(cfg, CPU, resume=False, overwrite=False) as trainer:
        assert timed == [512] and trainer.cfg.image_size == 512
