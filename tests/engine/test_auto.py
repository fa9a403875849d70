"""The shared recipe rules (botnet.engine.auto) and the reasons recorded beside the values in config.yaml."""

from __future__ import annotations

import math

import pytest
import yaml

from botnet.classification.config import TrainConfig
from botnet.engine.auto import apply_rules, cap_batch, fit_image_size, sqrt_schedule, warmup
from botnet.engine.config import build_config, read_yaml_comments, save_yaml


@pytest.mark.parametrize(
    ("side", "size", "why"),
    [
        (8, 32, "raised to the model's smallest useful size"),  # 8x8 scans: 2 strides, the smallest useful input
        (40, 48, "rounded up to a multiple of the network's stride 16"),
        (48, 48, "rounded up"),
        # Photos larger than the model's size are scaled down to it; the reason says what keeping them would cost.
        (300, 64, "scaled down 4.69x: --image-size 304 keeps their detail at about 22.6x the compute per image"),
        (None, 64, "could not be read"),
    ],
)
def test_image_size_follows_the_data_between_the_model_bounds(side, size, why):
    value, reason = fit_image_size(side, stride=16, smallest=32, largest=64, what="median side")
    assert value == size and why in reason


def test_batch_is_halved_until_an_epoch_has_ten_steps():
    assert cap_batch(64, 1438, processes=1, accumulate=1) == (64, "64 per process")
    batch, reason = cap_batch(64, 160, processes=1, accumulate=1)
    assert batch == 16 and "halved to 16" in reason and "160 images" in reason  # 10 steps of 16
    assert cap_batch(64, 160, processes=2, accumulate=1)[0] == 8  # 10 steps of 2 x 8
    assert cap_batch(8, 5, processes=1, accumulate=1, floor=1)[0] == 1  # never below the floor
    for images in range(1, 3000, 37):  # the rule's promise, checked against its definition
        batch, _ = cap_batch(64, images, processes=1, accumulate=1)
        assert batch == 64 or images // batch >= 10 or batch == 2
        assert batch == 64 or images // (batch * 2) < 10  # and it halves no further than needed


def test_schedule_grows_with_the_square_root_of_the_images():
    # 850 x sqrt(N) images seen, in whole epochs of the given steps.
    epochs, reason = sqrt_schedule(20000, per_sqrt_image=850, global_batch=64, steps_per_epoch=312)
    assert epochs == round(850 * math.sqrt(20000) / 64 / 312) == 6 and "850 x sqrt(20,000)" in reason
    assert sqrt_schedule(1438, per_sqrt_image=850, global_batch=64, steps_per_epoch=22)[0] == 23
    assert sqrt_schedule(3, per_sqrt_image=850, global_batch=64, steps_per_epoch=1)[0] >= 1
    # More images: more optimizer steps in all, fewer passes over each image.
    runs = [
        (n, sqrt_schedule(n, per_sqrt_image=850, global_batch=64, steps_per_epoch=n // 64)[0])
        for n in (1280, 5120, 20480, 81920)
    ]
    steps = [e * (n // 64) for n, e in runs]
    assert steps == sorted(steps) and [e for _, e in runs] == sorted((e for _, e in runs), reverse=True)


def test_warmup_is_one_epoch_at_most_a_fifth_of_the_run():
    assert warmup(23, 22) == (1.0, "one epoch (22 steps)")
    assert warmup(3, 100)[0] == pytest.approx(0.6)
    assert warmup(4, 375, length=0.5) == (0.5, "0.5 epoch (188 steps)")


def test_rules_fill_only_what_is_auto_and_explain_it():
    cfg = build_config(config_cls=TrainConfig, lr=0.05)
    reasons: dict[str, str] = {}
    cfg = apply_rules(
        cfg,
        [
            ("lr", lambda c: (1.0, "never used")),
            ("epochs", lambda c: (7, "seven")),
            ("warmup_epochs", lambda c: (c.epochs / 7, f"reads the epochs just chosen ({c.epochs})")),
        ],
        reasons,
    )
    assert (cfg.lr, cfg.epochs, cfg.warmup_epochs) == (0.05, 7, 1.0)
    assert reasons == {"epochs": "seven", "warmup_epochs": "reads the epochs just chosen (7)"}


def test_config_yaml_keeps_the_reasons_as_comments(tmp_path):
    cfg = build_config(config_cls=TrainConfig).replace(lr=0.2, scale=(0.35, 1.0), epochs=23)
    reasons = {"lr": "sgd 0.2 per 64 images: #1 rule", "scale": "crops keep a third", "epochs": "a\nmultiline reason"}
    path = tmp_path / "config.yaml"
    save_yaml(cfg, path, comments=reasons)
    text = path.read_text()
    assert "lr: 0.2  # auto: sgd 0.2 per 64 images: #1 rule\n" in text
    assert yaml.safe_load(text) == cfg.to_dict()  # comments change nothing that is read back
    assert read_yaml_comments(path) == {**reasons, "epochs": "a multiline reason"}
    assert read_yaml_comments(tmp_path / "missing.yaml") == {}
