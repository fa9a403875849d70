"""Fine-tuning with ``botnet train --pretrained``: the recipe, a run end to end with another class count, freezing,
exact resume, strictness, and bad sources (exit 2, nothing written)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from botnet.classification import TrainConfig, train
from botnet.classification.recipe import DataFacts, finetune_recipe, resolve
from botnet.engine import build_config
from botnet.engine import checkpoint as ckpt
from botnet.engine.distributed import DistInfo
from botnet.models import read_metadata
from train_helpers import FAST, train_until_killed, write_image_folder

TINY_FT = ["--batch-size", "8", "--workers", "0", "--epochs", "2", "--log-interval", "1000"]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """botnet_tiny trained briefly on the built-in shapes (10 classes): the weights fine-tuned below."""
    out = tmp_path_factory.mktemp("src") / "run"
    train(build_config(config_cls=TrainConfig, **dict(FAST, epochs=1), output=str(out)))
    return out


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "d", classes=("a", "b", "c"), per_class=8)


def cli(capsys, monkeypatch, *args) -> tuple[int, str]:
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    capsys.readouterr()
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("batch", "optimizer", "lr"),
    [(64, "sgd", 0.04), (256, "sgd", 0.16), (16, "sgd", 0.01), (512, "adamw", 1e-3), (128, "adamw", 2.5e-4)],
)
def test_finetune_recipe_table(batch, optimizer, lr):
    r = finetune_recipe(batch=batch, optimizer=optimizer)
    assert r["lr"][0] == pytest.approx(lr) and f"batch {batch}" in r["lr"][1]
    assert {k: v for k, (v, _) in r.items() if k != "lr"} == {
        "warmup_epochs": 0.0,
        "epochs": 10,
        "scale": (0.5, 1.0),
        "backbone_lr_scale": 1.0,
    }
    assert all(reason.startswith("fine-tuning") for _, reason in r.values())


def test_resolve_takes_the_source_preprocessing_unless_given(capsys):
    info = DistInfo(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    src = dict(
        input_size=[3, 256, 256], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], crop_pct=0.95, interpolation="bicubic"
    )
    cfg = build_config(config_cls=TrainConfig, data="x", pretrained="timm:botnet26t_256.c1_in1k", crop_pct=0.9)
    facts = DataFacts(images=5000, classes=10, side=300.0, mirror=0.9, mirror_images=400)
    cfg, pre, reasons = resolve(cfg, info, src, facts=facts)
    assert (pre.img_size, pre.crop_pct, pre.interpolation, pre.mean, pre.std) == (
        256,
        0.9,
        "bicubic",
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
    )
    # The recipe fills the auto values and says why; given values stand.
    assert (cfg.lr, cfg.epochs, cfg.warmup_epochs, cfg.scale) == (0.16 * 128 / 256, 10, 0.0, (0.5, 1.0))
    err = capsys.readouterr().err
    assert "lr 0.08: fine-tuning, sgd 0.16 per 256 images, batch 128" in err and "epochs 10: fine-tuning" in err
    assert reasons["image_size"] == "the pretrained weights' input size" and "crop_pct" not in reasons
    # From random weights the data's rules apply instead (tests/classification/test_recipe.py has them in full).
    plain, pre, _ = resolve(build_config(config_cls=TrainConfig, data="x"), info, facts=facts)
    assert (plain.lr, plain.warmup_epochs, plain.backbone_lr_scale, plain.scale) == (0.2 * 128 / 64, 1.0, 1.0, (0.8, 1))
    assert (pre.interpolation, pre.crop_pct, pre.img_size) == ("bilinear", 0.875, 64)


def test_finetune_end_to_end_with_another_class_count(tmp_path, capsys, monkeypatch, source_run, three_classes):
    out = tmp_path / "ft"
    status, err = cli(
        capsys, monkeypatch, "train", "--data", three_classes, "--pretrained", source_run, *TINY_FT, "--output", out
    )
    assert status == 0, err
    assert f"weights {source_run} (botnet): loaded" in err
    assert "reinitialised (another class count): 2: fc.weight, fc.bias" in err
    assert "head reinitialised for the data's 3 classes (the weights have 10 classes)" in err
    assert "lr 0.005: fine-tuning, sgd 0.16 per 256 images, batch 8" in err
    src = load_file(source_run / "best" / "model.safetensors")
    ft = load_file(out / "best" / "model.safetensors")
    assert ft["fc.weight"].shape[0] == 3 and src["fc.weight"].shape[0] == 10
    # The preprocessing of the source run (32 px, crop 1.0) is the fine-tuning run's: config.yaml and checkpoint.
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["image_size"], saved["crop_pct"], saved["pretrained"]) == (32, 1.0, str(source_run))
    pre = json.loads(read_metadata(out / "best" / "model.safetensors")["preprocess"])
    assert (pre["img_size"], pre["crop_pct"], pre["interpolation"]) == (32, 1.0, "bilinear")
    status, err = cli(capsys, monkeypatch, "eval", "--checkpoint", out, "--workers", "0")
    assert status == 0, err


def test_frozen_stages_get_no_gradient_no_state_and_keep_their_weights(tmp_path, source_run, three_classes):
    out = tmp_path / "frozen"
    cfg = build_config(
        config_cls=TrainConfig,
        data=str(three_classes),
        pretrained=str(source_run),
        freeze_stages=1,
        backbone_lr_scale=0.5,
        batch_size=8,
        workers=0,
        epochs=2,
        weight_decay=0.1,
        output=str(out),
    )
    train(cfg)
    src, ft = load_file(source_run / "best" / "model.safetensors"), load_file(out / "last" / "model.safetensors")
    frozen = [k for k in src if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert frozen and all(torch.equal(src[k], ft[k]) for k in frozen)  # BN running statistics included
    assert not torch.equal(src["layer2.0.conv1.weight"], ft["layer2.0.conv1.weight"])
    state = ckpt.load_training_state(out / "last")["optimizer"]
    groups = {g["name"]: g for g in state["param_groups"]}
    assert set(groups) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
    assert groups["head"]["initial_lr"] == pytest.approx(2 * groups["backbone"]["initial_lr"])
    assert (groups["head"]["weight_decay"], groups["backbone_no_decay"]["weight_decay"]) == (0.1, 0.0)
    trainable = sum(len(g["params"]) for g in groups.values())
    params = dict(torch.nn.Module.named_parameters(_model(ft)))
    assert trainable == len(params) - len([k for k in frozen if k in params])
    assert len(state["state"]) == trainable  # momentum buffers for the trainable parameters only


def _model(state):
    from botnet import create_model

    m = create_model("botnet_tiny", num_classes=state["fc.weight"].shape[0], img_size=32)
    m.load_state_dict(state)
    return m


def test_interrupted_and_resumed_finetuning_is_bitwise_identical(tmp_path, monkeypatch, source_run, three_classes):
    opts = dict(
        data=str(three_classes),
        pretrained=str(source_run),
        freeze_stages=1,
        backbone_lr_scale=0.1,
        batch_size=4,
        workers=0,
        epochs=2,
        checkpoint_steps=2,
        log_interval=1000,
    )
    train(build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "a")))
    train_until_killed(monkeypatch, build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "b")), 5)
    assert ckpt.load_training_state(tmp_path / "b" / "last")["counters"]["global_step"] == 4
    train(build_config(config_cls=TrainConfig, **opts, output=str(tmp_path / "b")), resume=True)
    a, b = load_file(tmp_path / "a/last/model.safetensors"), load_file(tmp_path / "b/last/model.safetensors")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    la = [json.loads(x)["train_loss"] for x in (tmp_path / "a/metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["train_loss"] for x in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_strictness(tmp_path, capsys, monkeypatch, source_run, three_classes):
    state = load_file(source_run / "best" / "model.safetensors")
    state["extra.weight"] = torch.zeros(2)
    del state["layer4.0.attn.qkv.weight"]
    save_file(state, tmp_path / "odd.safetensors")
    out = tmp_path / "strict"
    status, err = cli(
        capsys,
        monkeypatch,
        "train",
        "--data",
        three_classes,
        "--pretrained",
        tmp_path / "odd.safetensors",
        *TINY_FT,
        "--output",
        out,
    )
    assert status == 2 and "1 missing (layer4.0.attn.qkv.weight)" in err and "1 unexpected (extra.weight)" in err
    assert not out.exists()
    status, err = cli(
        capsys,
        monkeypatch,
        "train",
        "--data",
        three_classes,
        "--pretrained",
        tmp_path / "odd.safetensors",
        "--pretrained-strict",
        "false",
        *TINY_FT,
        "--epochs",
        "1",
        "--output",
        out,
    )
    assert status == 0, err
    assert "missing (kept as initialised): 1: layer4.0.attn.qkv.weight" in err and "unexpected (ignored): 1" in err


class _RunsCode:
    def __reduce__(self):
        return (print, ("this ran",))


def test_bad_sources_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch, three_classes, source_run):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "code.pth").write_bytes(pickle.dumps({"w": _RunsCode()}))
    good = (source_run / "best" / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[: len(good) // 2])
    cases = {
        tmp_path / "nowhere.pth": "does not exist",
        "timm:botnet26t_256.nope": "published tags of botnet26t_256: c1_in1k",
        "timm:botnet26t_256.c1_in1k": "offline (HF_HUB_OFFLINE) and not in the cache",
        tmp_path / "code.pth": "refused",
        tmp_path / "cut.safetensors": "truncated",
        source_run: "do not fit resnet50",  # another architecture: named, with what the weights look like
    }
    for i, (source, message) in enumerate(cases.items()):
        out = tmp_path / f"run{i}"
        model = ["--model", "resnet50"] if source == source_run else []
        status, err = cli(
            capsys,
            monkeypatch,
            "train",
            "--data",
            three_classes,
            "--pretrained",
            source,
            *model,
            *TINY_FT,
            "--output",
            out,
        )
        assert status == 2 and message in err and "Traceback" not in err, (source, err)
        assert not out.exists(), source
    assert "They look like botnet_tiny" in err
