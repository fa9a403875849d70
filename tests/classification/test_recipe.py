"""botnet train's auto values: the rules over the data, the built-in dataset through the same rules, and what the
run prints and records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from botnet.classification.config import TrainConfig
from botnet.classification.data_facts import read_facts, shapes_facts
from botnet.classification.recipe import DataFacts, data_rules, resolve
from botnet.cli.main import main
from botnet.engine.config import build_config
from botnet.engine.distributed import DistInfo

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_the_builtin_dataset_goes_through_the_rules():
    facts = shapes_facts(20000, 0)
    assert (facts.images, facts.classes, facts.side, facts.mirror) == (20000, 10, 64.0, None)  # no class layout
    cfg, pre, reasons = resolve(build_config(config_cls=TrainConfig), CPU, facts=facts, announce=False)
    assert (cfg.image_size, cfg.batch_size, cfg.lr, cfg.epochs, cfg.warmup_epochs) == (64, 64, 0.2, 6, 1.0)
    assert (cfg.scale, cfg.ratio, cfg.hflip, pre.crop_pct) == ((0.8, 1.0), (1.0, 1.0), 0.5, 1.0)
    assert set(reasons) == {
        "image_size", "batch_size", "hflip", "crop_pct", "ratio", "lr", "epochs", "warmup_epochs", "scale",
        "backbone_lr_scale",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # 8x8 scans, asymmetric classes: the smallest useful input, no flips, scaled whole, 23 epochs.
        (DataFacts(1438, 10, 8.0, 0.33, 400), dict(image_size=32, hflip=0.0, crop_pct=1.0, batch_size=64, epochs=23)),
        # 160 face crops: batch 16 for 10 steps an epoch, flips, a long schedule over few images.
        (DataFacts(160, 2, 25.0, 0.95, 80), dict(image_size=32, hflip=0.5, batch_size=16, lr=0.05, epochs=67)),
        # 300 px photos: the model's size, ImageNet's eval crop; 150,000 images: heavy crops; 4:3 photos, 4:3 crops.
        (
            DataFacts(150_000, 100, 300.0, 0.9, 4000, aspect=4 / 3),
            dict(image_size=64, crop_pct=0.875, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), epochs=2),
        ),
    ],
)
def test_rules_over_the_data(facts, expected):
    cfg, _ = data_rules(build_config(config_cls=TrainConfig).replace(workers=0), facts, 1)
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_given_values_stand_and_are_not_explained():
    facts = DataFacts(1438, 10, 8.0, 0.33, 400)
    cfg = build_config(config_cls=TrainConfig, image_size=64, hflip=0.5, batch_size=32, epochs=3).replace(workers=0)
    cfg, reasons = data_rules(cfg, facts, 1)
    assert (cfg.image_size, cfg.hflip, cfg.batch_size, cfg.epochs) == (64, 0.5, 32, 3)
    assert cfg.lr == pytest.approx(0.1) and cfg.warmup_epochs == pytest.approx(0.6)  # from the given batch, epochs
    assert not {"image_size", "hflip", "batch_size", "epochs"} & set(reasons)


def test_two_processes_halve_the_per_process_batch_and_scale_the_rate():
    cfg, _ = data_rules(build_config(config_cls=TrainConfig).replace(workers=0), DataFacts(800, 4, 32.0), 2)
    assert (cfg.batch_size, cfg.lr) == (32, pytest.approx(0.2))  # 10 steps of 2 x 32 images; 0.2 per 64


def write_folder(root, classes=3, per_class=20, size=12):
    """Classes told apart by where a bar sits left of centre: mirrored, a class would look like no class."""
    for c in range(classes):
        for i in range(per_class):
            img = np.full((size, size), 30, np.uint8)
            img[:, c * 2 : c * 2 + 2] = 220 - i
            path = root / "train" / f"c{c}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).convert("RGB").save(path)
    return root


def test_facts_of_a_folder_count_the_training_share(tmp_path):
    cfg = build_config(config_cls=TrainConfig, data=str(write_folder(tmp_path)))
    facts = read_facts(cfg, announce=False)
    assert (facts.images, facts.classes, facts.side) == (48, 3, 12.0)  # 20% of each class held out to validate
    assert facts.mirror is not None and facts.mirror < 0.6 and facts.mirror_images == 48


def test_train_prints_the_recipe_and_records_it(tmp_path, capsys, monkeypatch):
    data = write_folder(tmp_path / "data")
    out = tmp_path / "run"
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    status = main(["train", "--data", str(data), "--epochs", "1", "--workers", "0", "--output", str(out)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "image_size 32: images of median side 12 px, raised to the model's smallest useful size" in err
    assert "hflip 0: off: mirrored images do not look like their class" in err
    assert "batch_size 4: 64 halved to 4 so that an epoch of 48 images has at least 10 optimizer steps" in err
    assert "time estimate: about" in err and "12 optimizer steps" in err
    assert "epochs 1:" not in err  # given, not chosen
    text = (out / "config.yaml").read_text()
    assert "image_size: 32  # auto: images of median side 12 px" in text
    assert yaml.safe_load(text)["hflip"] == 0.0
