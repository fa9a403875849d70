"""botnet detect train's auto values: rules over the annotations, the built-in dataset through the same rules."""

from __future__ import annotations

import pytest
import torch

from botnet.data.describe import describe_coco
from botnet.detection.config import DetectConfig
from botnet.detection.recipe import DetectFacts, anchors, data_rules, facts_from, resolve_detect
from botnet.engine.config import build_config
from botnet.engine.distributed import DistInfo

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def rules(facts, **given):
    return data_rules(build_config(config_cls=DetectConfig, **given).replace(workers=0), facts, 1)


def test_builtin_sized_data_gets_the_builtin_recipe():
    # The built-in dataset's facts (3,000 images of 128 px, small objects at 0.148 of the side).
    cfg, reasons = rules(DetectFacts(3000, 128.0, 0.1484375))
    assert (cfg.image_size, cfg.batch_size, cfg.lr, cfg.epochs, cfg.warmup_epochs) == (128, 8, 0.04, 4, 0.5)
    assert cfg.anchor_sizes == (16, 32, 64, 128, 256) and "19 px at 128 px" in reasons["anchor_sizes"]
    assert "from random weights" in reasons["lr"]


def test_rules_over_the_data():
    few, reasons = rules(DetectFacts(117, 128.0, 0.07))  # 117 microscopy tiles, small nuclei
    assert (few.batch_size, few.epochs, few.anchor_sizes) == (8, 21, (8, 16, 32, 64, 128))
    # 14 steps an epoch: the 100-step warm-up floor is cut to a fifth of the 21 epochs.
    assert few.warmup_epochs == pytest.approx(4.2) and reasons["warmup_epochs"] == "20% of the 21-epoch schedule"
    photos, reasons = rules(DetectFacts(400, 128.0, 0.19))  # 50 steps an epoch: 100 steps are 2 epochs
    assert photos.warmup_epochs == 2.0 and reasons["warmup_epochs"] == "100 steps (2 epochs), the least a warm-up gets"
    tiny, _ = rules(DetectFacts(30, 128.0, 0.2))  # 30 images: batch 2 for 10 steps an epoch (floor 1)
    assert tiny.batch_size == 2 and tiny.lr == pytest.approx(0.01)
    big, _ = rules(DetectFacts(5000, 2000.0, 0.05), model="maskrcnn_botnet50_fpn")
    assert big.image_size == 1024 and big.anchor_sizes == (32, 64, 128, 256, 512)  # scaled down to the model's size
    pre, reasons = rules(DetectFacts(400, 128.0, 0.2), weights_backbone="some.safetensors")
    assert pre.lr == pytest.approx(0.02 / 16 * 8) and "pretrained" in reasons["lr"]


def test_given_values_stand():
    cfg, reasons = rules(DetectFacts(400, 128.0, 0.2), batch_size=4, anchor_sizes=(8, 16, 32, 64, 128), epochs=3)
    assert (cfg.batch_size, cfg.anchor_sizes, cfg.epochs, cfg.lr) == (4, (8, 16, 32, 64, 128), 3, 0.02)
    assert not {"batch_size", "anchor_sizes", "epochs"} & set(reasons)


def test_anchor_rule_never_goes_below_the_finest_stride():
    assert anchors(0.001, 128)[0] == (4, 8, 16, 32, 64)
    assert anchors(None, 128)[0] is None


def test_facts_from_annotations_take_off_the_held_out_share():
    data = {
        "images": [{"id": i, "width": 200, "height": 100, "file_name": f"{i}.png"} for i in range(10)],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 20 + i, 10], "iscrowd": 0} for i in range(10)
        ],
    }
    facts = facts_from(describe_coco(data), 0.8)
    assert (facts.images, facts.side) == (8, 200.0)
    assert facts.small_object == pytest.approx(describe_coco(data).object_sizes.p10)


def test_resolve_announces_the_recipe(capsys):
    cfg, reasons = resolve_detect(build_config(config_cls=DetectConfig), CPU, facts=DetectFacts(400, 128.0, 0.19))
    err = capsys.readouterr().err
    assert "recipe (auto values; set any option to override)" in err
    assert "lr 0.04: sgd 0.04 per 8 images, batch 8, from random weights" in err
    assert cfg.epochs == 11 and set(reasons) >= {"image_size", "batch_size", "lr", "epochs", "anchor_sizes"}
