"""A user's own folder through the command line (in this process): one folder is enough, bad data is a message before
any training, imbalance is a warning, and evaluation reports per-class and balanced accuracy and a confusion PNG."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from train_helpers import write_image_folder

FAST = ["--image-size", "32", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--log-interval", "1000"]


def test_one_folder_imbalanced_trains_and_evaluates(tmp_path, cli):
    data = write_image_folder(tmp_path / "data", classes=("cat", "dog"), per_class=22, splits=("train",))
    for i in range(2, 22):
        (data / "train" / "dog" / f"{i}.png").unlink()  # 22 cats, 2 dogs
    run = tmp_path / "run"
    status, _, err = cli("train", "--data", data, *FAST, "--output", run)
    assert status == 0, err
    assert f"no val/ folder in {data}: holding out 20% of each class, seed 0: 5 of 24 images" in err  # 4 cats, 1 dog
    assert "warning: class imbalance in the training set" in err and "'cat' has 18 images, 'dog' 1" in err
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= row["val_balanced_acc"] <= 100
    with Image.open(run / "confusion.png") as img:
        assert img.size == (480, 480)  # (4 + 0.4 x 2 classes) inches x 100

    status, out, err = cli("eval", "--checkpoint", run, "--workers", "0")
    assert status == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["data"] == f"{data}/train (20% held out, seed 0)" and result["images"] == 5
    assert result["per_class_images"] == {"cat": 4, "dog": 1}
    confusion = result["confusion_matrix"]
    assert [sum(r) for r in confusion] == [4, 1]
    assert result["top1"] == pytest.approx(100 * (confusion[0][0] + confusion[1][1]) / 5)
    assert result["per_class_accuracy"] == {"cat": 100 * confusion[0][0] / 4, "dog": 100 * confusion[1][1] / 1}
    assert result["balanced_accuracy"] == pytest.approx(sum(result["per_class_accuracy"].values()) / 2)
    assert result["balanced_accuracy"] == pytest.approx(row["val_balanced_acc"])  # the same held-out images
    assert f"balanced {result['balanced_accuracy']:.2f}%" in out and "  dog" in out
    assert (run / "eval_confusion.png").is_file() and result["confusion_png"] == str(run / "eval_confusion.png")

    # --data DIR without val/: the share a run on it would hold out, by the run's seed and fraction.
    status, _, err = cli("eval", "--checkpoint", run, "--data", data, "--workers", "0", "--output", tmp_path / "e.json")
    assert status == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["confusion_matrix"] == confusion


def test_bad_data_is_a_message_before_training(tmp_path, cli):
    def train(data, *extra):
        status, _, err = cli("train", "--data", data, *FAST, *extra, "--output", tmp_path / "run", "--overwrite")
        assert status == 2 and "Traceback" not in err
        assert not (tmp_path / "run" / "last").exists()  # nothing was trained
        return err

    one = write_image_folder(tmp_path / "one", classes=("a", "b", "c"), per_class=5, splits=("train",))
    for i in range(1, 5):
        (one / "train" / "b" / f"{i}.png").unlink()
    err = train(one)
    assert "too small to hold out a validation set: 'b' has a single image" in err
    assert "each class needs at least 2 images" in err

    extra = write_image_folder(tmp_path / "extra", classes=("a", "b"), per_class=3)
    shutil.copytree(extra / "val" / "b", extra / "val" / "fox")
    err = train(extra)
    assert "class folders of" in err and "extra 1: fox" in err

    status, _, err = cli("train", "--data", extra, *FAST, "--val-fraction", "1.5", "--output", tmp_path / "r2")
    assert status == 2 and "--val-fraction" in err and "[0, 1)" in err


def test_val_fraction_0_trains_on_every_image_without_validation(tmp_path, cli):
    data = write_image_folder(tmp_path / "data", per_class=4, splits=("train",))
    run = tmp_path / "run"
    status, out, err = cli("train", "--data", data, *FAST, "--epochs", "2", "--val-fraction", "0", "--output", run)
    assert status == 0, err
    assert "--val-fraction 0: no validation; every image trains, and best/ follows the training loss" in err
    assert "8 train / no val images" in err and "and 0 validation(s)" in err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and not any(k.startswith("val_") for r in rows for k in r)
    best = min(rows, key=lambda r: r["train_loss"])
    assert json.loads((run / "best" / "checkpoint.json").read_text())["epoch"] == best["epoch"]
    assert f"no validation: train loss {rows[-1]['train_loss']:.4f} (best/ at epoch {best['epoch']}" in out
    status, _, err = cli("eval", "--checkpoint", run, "--workers", "0")
    assert status == 2 and "held none of its images out (val_fraction 0)" in err
