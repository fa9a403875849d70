"""safetensors weights of our models: round trip, metadata, position tables of another size, errors, atomicity."""

from __future__ import annotations

import json
import os

import pytest
import torch

import botnet
from botnet import BoTNetConfig
from botnet.models import read_metadata

C5_BLOCK0_REL_H = "layer4.0.attn.pos.rel_h"


def _model(name: str = "botnet50", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return botnet.create_model(name, **overrides)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _assert_differ(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Two freshly built models (different seeds) differ, so a round trip is a real check."""
    assert not torch.equal(a.layer4[0].attn.qkv.weight, b.layer4[0].attn.qkv.weight)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A botnet50 (10 classes, with non-default BN statistics) and its safetensors file."""
    model = _model(num_classes=10, seed=0)
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 64, 64))  # move the running statistics away from their init
    path = botnet.save_weights(model, tmp_path_factory.mktemp("weights") / "botnet50.safetensors")
    return model, path


def test_round_trip(saved):
    model, path = saved
    other = _model(num_classes=10, seed=1)
    _assert_differ(model, other)
    botnet.load_weights(other, path)
    _assert_same_state(model, other)


def test_metadata_rebuilds_the_config(saved):
    model, path = saved
    meta = read_metadata(path)
    assert meta["architecture"] == "botnet50"
    cfg = BoTNetConfig(**json.loads(meta["botnet_config"]))  # __post_init__ turns the JSON lists into tuples
    assert cfg == model.cfg
    assert isinstance(cfg.depths, tuple)
    assert cfg.num_classes == 10


def test_extra_metadata_is_stored(tmp_path):
    path = botnet.save_weights(_model("resnet50", num_classes=3), tmp_path / "w.safetensors", metadata={"k": "v"})
    meta = read_metadata(path)
    assert meta["k"] == "v"
    assert meta["architecture"] == "resnet50"


def test_create_model_with_checkpoint(saved):
    model, path = saved
    loaded = botnet.create_model("botnet50", num_classes=10, checkpoint_path=path)
    _assert_same_state(model, loaded)


# ----------------------------------------------------------------------------------------------------------------
# Position tables saved for another reference size


def _rel_h_keys(model: torch.nn.Module) -> list[str]:
    return [k for k in model.state_dict() if "rel_h" in k]


def test_table_shapes_follow_img_size():
    assert _model(num_classes=10, img_size=256).state_dict()[C5_BLOCK0_REL_H].shape == (31, 128)
    small = _model(num_classes=10, img_size=224)
    assert small.state_dict()[C5_BLOCK0_REL_H].shape == (27, 128)
    assert _rel_h_keys(small) == [f"layer4.{i}.attn.pos.rel_h" for i in range(3)]


def test_large_tables_load_into_a_small_model(tmp_path):
    large = _model(num_classes=10, img_size=256, seed=0)
    path = botnet.save_weights(large, tmp_path / "large.safetensors")
    small = _model(num_classes=10, img_size=224, seed=1)
    botnet.load_weights(small, path)
    got, saved = small.state_dict(), large.state_dict()
    assert got[C5_BLOCK0_REL_H].shape == (27, 128)
    assert torch.equal(got[C5_BLOCK0_REL_H], saved[C5_BLOCK0_REL_H][2:29])
    for key in _rel_h_keys(small)[1:]:  # blocks 1-2: 8x8 maps -> 7x7 maps, rows (15, d) -> (13, d)
        assert torch.equal(got[key], saved[key][1:14]), key
    assert torch.equal(got["layer4.0.attn.qkv.weight"], saved["layer4.0.attn.qkv.weight"])


def test_small_tables_load_into_a_large_model_with_clipping(tmp_path):
    small = _model(num_classes=10, img_size=224, seed=0)
    path = botnet.save_weights(small, tmp_path / "small.safetensors")
    large = _model(num_classes=10, img_size=256, seed=1)
    botnet.load_weights(large, path)
    table = large.state_dict()[C5_BLOCK0_REL_H]
    ref = small.state_dict()[C5_BLOCK0_REL_H]
    assert table.shape == (31, 128)
    assert torch.equal(table[2:29], ref)
    for row in (0, 1):
        assert torch.equal(table[row], ref[0])
    for row in (29, 30):
        assert torch.equal(table[row], ref[-1])


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        botnet.load_weights(_model(num_classes=10), tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "nope.safetensors")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x07 this is not a safetensors file \x00\xff" * 4)
    with pytest.raises(ValueError, match="safetensors"):
        botnet.load_weights(_model(num_classes=10), path)
    with pytest.raises(ValueError, match="safetensors"):
        read_metadata(path)


def test_weights_of_another_depth(saved):
    _, path = saved
    with pytest.raises(ValueError, match="do not fit"):
        botnet.load_weights(_model("botnet101", num_classes=10), path)


def test_weights_of_another_class_count(saved):
    _, path = saved
    with pytest.raises(ValueError, match="fc"):
        botnet.load_weights(_model(num_classes=1000), path)


# ----------------------------------------------------------------------------------------------------------------
# Atomic save


def test_save_leaves_no_temporary_file_and_replaces(tmp_path):
    path = tmp_path / "sub" / "model.safetensors"
    first = _model("resnet50", num_classes=4, seed=0)
    assert botnet.save_weights(first, path) == path
    assert os.listdir(path.parent) == ["model.safetensors"]
    second = _model("resnet50", num_classes=4, seed=1)
    assert not torch.equal(first.fc.weight, second.fc.weight)
    botnet.save_weights(second, path)
    assert os.listdir(path.parent) == ["model.safetensors"]
    loaded = _model("resnet50", num_classes=4, seed=2)
    botnet.load_weights(loaded, path)
    _assert_same_state(second, loaded)


def test_failed_save_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"previous")
    model = _model("resnet50", num_classes=4)
    with pytest.raises(TypeError):  # safetensors metadata must map str -> str: the writer fails mid-save
        botnet.save_weights(model, path, metadata={"key": 1})
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert path.read_bytes() == b"previous"


def test_reset_classifier_is_recorded_in_saved_config(tmp_path):
    model = botnet.create_model("botnet50", num_classes=10)
    model.reset_classifier(5)
    path = botnet.save_weights(model, tmp_path / "reset.safetensors")
    cfg = botnet.BoTNetConfig(**json.loads(botnet.models.read_metadata(path)["botnet_config"]))
    assert cfg.num_classes == 5
    botnet.load_weights(botnet.BoTNet(cfg), path)


def test_torchvision_loader_refuses_unreadable_safetensors(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        botnet.load_torchvision_weights(botnet.create_model("resnet50"), path)
