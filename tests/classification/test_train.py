"""The training loop in-process: the output-directory contract, exact resume, recipe options, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file

from botnet.classification import TrainConfig, evaluate_checkpoint, train
from botnet.data import DataError
from botnet.engine import TrainingError, build_config
from botnet.engine import checkpoint as ckpt
from botnet.engine.loop import Trainer as _Run
from train_helpers import FAST, train_until_killed, write_image_folder

METRIC_KEYS = {"epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "epoch_time_s", "images_per_s"}


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contract(tmp_path):
    out = tmp_path / "run"
    summary = train(build_config(config_cls=TrainConfig, **FAST, output=str(out)))
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["lr"] == pytest.approx(0.2 * 16 / 64)  # "auto" options resolved
    assert saved["crop_pct"] == 1.0 and saved["scale"] == [0.8, 1.0]
    metrics = rows(out)
    assert [r["epoch"] for r in metrics] == [1, 2]
    for r in metrics:
        assert r.keys() >= METRIC_KEYS
        assert all(math.isfinite(r[k]) for k in METRIC_KEYS)
        assert 0 <= r["val_top1"] <= r["val_top5"] <= 100
    assert metrics[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ends at min_lr
    assert summary["val_top1"] == metrics[-1]["val_top1"]
    for name in ("last", "best"):
        d = out / name
        assert {p.name for p in d.iterdir()} == {
            ckpt.MODEL_FILE,
            ckpt.STATE_FILE,
            ckpt.CONFIG_FILE,
            ckpt.SUMMARY_FILE,
            ckpt.MANIFEST_FILE,
        }
        assert ckpt.resolve_checkpoint(d) == d  # every file matches the manifest
    assert (out / "last.prev" / ckpt.MODEL_FILE).is_file()  # the checkpoint before last, to fall back to
    meta = ckpt.read_model_metadata(out / "last")
    assert meta["model"] == "botnet_tiny" and len(meta["class_names"]) == 10
    assert meta["preprocess"]["img_size"] == 32
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))  # no temporary leftovers
    # The saved weights reproduce the last validation numbers.
    result = evaluate_checkpoint(out / "last", workers=0)
    assert result["top1"] == pytest.approx(metrics[-1]["val_top1"])
    assert result["top5"] == pytest.approx(metrics[-1]["val_top5"])
    assert json.loads((out / "eval.json").read_text())["top1"] == result["top1"]


RECIPES = {
    "sgd": {},
    "full": dict(
        optimizer="adamw",
        ema_decay=0.9,
        accumulate=2,
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
        mix_prob=0.8,
        clip_grad=1.0,
        randaugment="rand-m9-n2",
        model_args={"drop_rate": 0.2},
    ),
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, monkeypatch, recipe):
    opts = dict(FAST, epochs=3, checkpoint_steps=2, **RECIPES[recipe])
    train(build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "a")))

    # Kill the second run after its 5th optimizer step; its last checkpoint is mid-epoch (step 4 of 6 per epoch...).
    train_until_killed(monkeypatch, build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "b")), 5)
    state = ckpt.load_training_state(tmp_path / "b" / "last")
    assert state["counters"]["global_step"] == 4 and state["counters"]["batch_in_epoch"] > 0
    train(build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "b")), resume=True)

    names = [ckpt.MODEL_FILE] + ([ckpt.EMA_FILE] if opts.get("ema_decay") else [])
    for name in names:
        a, b = load_file(tmp_path / "a" / "last" / name), load_file(tmp_path / "b" / "last" / name)
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{name}: {different[:5]}"
    ra, rb = rows(tmp_path / "a"), rows(tmp_path / "b")
    for key in ("train_loss", "val_loss", "val_top1", "lr", "global_step"):
        assert [r[key] for r in ra] == [r[key] for r in rb], key
    if opts.get("ema_decay"):
        assert "ema_val_top1" in ra[-1]
        model, ema = load_file(tmp_path / "a/last/model.safetensors"), load_file(tmp_path / "a/last/ema.safetensors")
        assert not torch.equal(model["fc.weight"], ema["fc.weight"])


def test_bf16_autocast_and_channels_last(tmp_path):
    summary = train(
        build_config(
            config_cls=TrainConfig, **dict(FAST, epochs=1), amp="bf16", channels_last=True, output=str(tmp_path / "r")
        )
    )
    assert math.isfinite(rows(tmp_path / "r")[0]["train_loss"])
    assert summary["val_top1"] is not None


def test_image_folder_any_mode_and_bad_images(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", per_class=8)
    (data / "train" / "cat" / "broken.jpg").write_bytes(b"not an image at all")
    (data / "train" / "dog" / "empty.png").write_bytes(b"")
    opts = dict(data=str(data), image_size=32, batch_size=2, epochs=1, workers=0, log_interval=1000)
    with pytest.raises(DataError, match=r"2 of \d+ images .* could not be read") as err:
        train(build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "strict")))
    assert "broken.jpg" in str(err.value) and "--max-bad-fraction" in str(err.value)
    train(build_config(config_cls=TrainConfig, **opts, max_bad_fraction=0.2, output=str(tmp_path / "lenient")))
    assert "skipped 2 of 18 images" in capsys.readouterr().err
    assert rows(tmp_path / "lenient")[0]["bad_images"] == 2
    assert ckpt.read_model_metadata(tmp_path / "lenient" / "last")["class_names"] == ["cat", "dog"]


def test_bad_data_directories(tmp_path):
    def run(data, name):
        train(
            build_config(config_cls=TrainConfig, data=str(data), image_size=32, workers=0, output=str(tmp_path / name))
        )

    with pytest.raises(DataError, match="does not exist"):
        run(tmp_path / "missing", "r1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train"):
        run(tmp_path / "empty", "r2")
    data = write_image_folder(tmp_path / "noimg")
    (data / "train" / "bird").mkdir()
    (data / "val" / "bird").mkdir()
    with pytest.raises(DataError, match="bird"):
        run(data, "r3")
    data = write_image_folder(tmp_path / "mismatch", classes=("cat", "dog"), splits=("train",))
    write_image_folder(tmp_path / "mismatch", classes=("cat", "fox"), splits=("val",))
    with pytest.raises(DataError, match=r"dog[\s\S]*fox|fox[\s\S]*dog"):
        run(data, "r4")
    assert not (tmp_path / "r1" / "last").exists()


def test_existing_run_and_unwritable_output(tmp_path):
    out = tmp_path / "run"
    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), output=str(out)))
    before = (out / "last" / ckpt.MODEL_FILE).read_bytes()
    with pytest.raises(ValueError, match="already holds a run .*--resume.*--overwrite"):
        train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), output=str(out)))
    assert (out / "last" / ckpt.MODEL_FILE).read_bytes() == before

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises((PermissionError, ValueError), match="file"):
        train(build_config(config_cls=TrainConfig, **FAST, output=str(blocker / "sub")))

    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), seed=1, output=str(out)), overwrite=True)
    assert (out / "last" / ckpt.MODEL_FILE).read_bytes() != before


def test_non_finite_loss_or_weights_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = _Run._forward_backward

    def nan_at_batch_4(self, images, targets, *, sync):
        loss = original(self, images, targets, sync=sync)
        return float("nan") if self.c.global_batch == 4 else loss

    monkeypatch.setattr(_Run, "_forward_backward", nan_at_batch_4)
    out = tmp_path / "nan"
    message = r"loss became non-finite \(nan\) at epoch 1, batch 4/6 \(optimizer step 3\); stopped, the last good "
    with pytest.raises(TrainingError, match=message + r"checkpoint is .*last \(optimizer step 3\)"):
        train(build_config(config_cls=TrainConfig, **FAST, checkpoint_steps=1, output=str(out)))
    assert ckpt.load_training_state(out / "last")["counters"]["global_step"] == 3
    monkeypatch.setattr(_Run, "_forward_backward", original)

    # A learning rate that blows the loss up: the run stops at the first loss out of its range (more than 20 times
    # the first step's), before a checkpoint of the diverged weights. With that check off, the weights overflow while
    # every loss looks in range: refused before they are saved. Either way nothing non-finite is saved.
    blown_up = r"the loss left its range \(.*, more than 20 x the first step's .*\): the "
    overflow = r"weights became non-finite .* after optimizer step \d+"
    for name, message in (("diverged", blown_up), ("overflow", overflow)):
        if name == "overflow":
            monkeypatch.setattr(_Run, "_check_finite", lambda self, loss, epoch: None)
        out = tmp_path / name
        cfg = build_config(config_cls=TrainConfig, **dict(FAST, lr=1e12, warmup_epochs=0), checkpoint_steps=1)
        with pytest.raises(TrainingError, match=message):
            train(cfg.replace(output=str(out)))
        if (out / "last").exists():
            weights = load_file(out / "last" / ckpt.MODEL_FILE)
            assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_eval_mismatches(tmp_path):
    out = tmp_path / "run"
    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), output=str(out)))
    data = write_image_folder(tmp_path / "data", classes=("a", "b", "c"))
    with pytest.raises(DataError, match="class count mismatch: .* 10 classes, .* has 3"):
        evaluate_checkpoint(out, str(data), workers=0)
    with pytest.raises(ValueError, match="holds a botnet_tiny model, not botnet50"):
        evaluate_checkpoint(out, model="botnet50", workers=0)
    with pytest.raises(ckpt.CheckpointError, match="not a botnet checkpoint"):
        evaluate_checkpoint(tmp_path, workers=0)


def test_fp16_needs_a_gpu_and_sync_bn_needs_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="--amp fp16 needs a CUDA device.*--amp bf16"):
        train(build_config(config_cls=TrainConfig, **FAST, amp="fp16", output=str(tmp_path / "a")))
    with pytest.raises(ValueError, match="--sync-bn needs CUDA"):
        train(build_config(config_cls=TrainConfig, **FAST, sync_bn=True, output=str(tmp_path / "b")))
    assert not (tmp_path / "a").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_with_grad_scaler_on_gpu(tmp_path):
    train(
        build_config(
            config_cls=TrainConfig, **FAST, device="cuda", amp="fp16", channels_last=True, output=str(tmp_path / "r")
        )
    )
    assert all(math.isfinite(r["train_loss"]) for r in rows(tmp_path / "r"))
    assert ckpt.load_training_state(tmp_path / "r" / "last")["scaler"] is not None


@pytest.mark.slow
def test_torch_compile_trains_like_eager(tmp_path):
    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), output=str(tmp_path / "eager")))
    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), compile=True, output=str(tmp_path / "compiled")))
    eager, compiled = rows(tmp_path / "eager")[0], rows(tmp_path / "compiled")[0]
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)


def test_fewer_images_than_one_batch(tmp_path):
    with pytest.raises(DataError, match="fewer than one batch of 128 .* lower --batch-size"):
        train(build_config(config_cls=TrainConfig, **dict(FAST, batch_size=128), output=str(tmp_path / "r")))
    assert not (tmp_path / "r" / "config.yaml").exists()  # the same --output can be used again


def test_a_finished_run_extended_follows_the_replanned_schedule_and_resumes_bitwise(tmp_path, monkeypatch):
    import shutil

    from botnet.engine.optim import build_scheduler

    opts = dict(FAST, checkpoint_steps=2)
    a, b = tmp_path / "a", tmp_path / "b"
    train(build_config(config_cls=TrainConfig, **opts, output=str(a)))  # 2 epochs of 6 steps
    shutil.copytree(a, b)
    train(build_config(config_cls=TrainConfig, **dict(opts, epochs=4), output=str(a)), resume=True)
    assert "epochs: 4  # auto: extended from 2 epochs at epoch 2 (optimizer step 12)" in (a / "config.yaml").read_text()

    # The same extension killed after 3 of its steps (its last checkpoint: step 14), then resumed: bit for bit.
    extended = build_config(config_cls=TrainConfig, **dict(opts, epochs=4), output=str(b))
    train_until_killed(monkeypatch, extended, 3, resume=True)
    assert ckpt.load_training_state(b / "last")["counters"]["global_step"] == 14
    train(build_config(config_cls=TrainConfig, **dict(opts, epochs=4), output=str(b)), resume=True)
    wa, wb = load_file(a / "last" / ckpt.MODEL_FILE), load_file(b / "last" / ckpt.MODEL_FILE)
    assert not [k for k in wa if not torch.equal(wa[k], wb[k])]
    ra, rb = rows(a), rows(b)
    assert [r["epoch"] for r in ra] == [1, 2, 3, 4] and [r["lr"] for r in ra] == [r["lr"] for r in rb]

    # The extended epochs' rates are those of a schedule planned for 4 epochs from the start (the same warm-up).
    cfg = build_config(config_cls=TrainConfig, **dict(opts, epochs=4), output=str(tmp_path / "plan"))
    cfg = cfg.replace(warmup_epochs=yaml.safe_load((a / "config.yaml").read_text())["warmup_epochs"])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=_peak_lr(a))
    scheduler, planned = build_scheduler(opt, cfg, 6), []
    for _ in range(4):
        for _ in range(6):
            opt.step()
            scheduler.step()
        planned.append(opt.param_groups[0]["lr"])
    assert [r["lr"] for r in ra[2:]] == pytest.approx(planned[2:], rel=1e-6)
    assert ra[1]["lr"] == pytest.approx(0.0, abs=1e-12) and ra[2]["lr"] > 0  # a warm restart after the finished end

    with pytest.raises(ValueError, match=r"--epochs 3 is fewer than the 4 epochs the run .* planned for \(4 done\)"):
        train(build_config(config_cls=TrainConfig, **dict(opts, epochs=3), output=str(a)), resume=True)


def _peak_lr(run) -> float:
    return float(yaml.safe_load((run / "config.yaml").read_text())["lr"])


def test_figures_are_redrawn_at_most_every_ten_seconds_and_after_the_last_epoch(tmp_path, monkeypatch):
    from botnet.classification.trainer import ClassificationTrainer
    from botnet.engine import loop

    drawn, images = [], []
    monkeypatch.setattr(loop, "plot_curves", lambda rows, path, curves: drawn.append(len(rows)))
    monkeypatch.setattr(ClassificationTrainer, "event_images", lambda self: images.append(self.c.epoch) or {})
    train(build_config(config_cls=TrainConfig, **{**FAST, "epochs": 4}, output=str(tmp_path / "run")))
    assert drawn == images == [1, 4]  # epochs of well under a second: the first, then the last
    images.clear()
    train(build_config(config_cls=TrainConfig, **FAST, tensorboard=False, output=str(tmp_path / "quiet")))
    assert images == []  # no event files: no images drawn for them
