"""The model zoo end to end: every preset trains at odd sizes, feature maps, timm API, overrides, input errors,
and torchvision weight compatibility."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import botnet
from botnet.layers import BoTBlock, NonLocal2d, SqueezeExcite
from botnet.models import get_config

EXPECTED_MODELS = {
    "resnet50", "resnet101", "resnet152", "resnet200",
    "botnet50", "botnet101", "botnet152", "botnet200",
    "botnet_s1_50", "botnet_s1_59", "botnet_s1_77", "botnet_s1_110", "botnet_s1_128",
    "botnet_t3", "botnet_t4", "botnet_t5", "botnet_t6", "botnet_t7",
    "botnet_tiny", "botnet26",
    "botnet26t_256", "sebotnet33ts_256", "eca_botnext26ts_256", "botnet50ts_256",
}  # fmt: skip

TRAIN_SIZES = [(64, 64), (64, 96), (65, 97)]  # square, non-square, odd


def _ceil_div(size: tuple[int, int], reduction: int) -> tuple[int, int]:
    return math.ceil(size[0] / reduction), math.ceil(size[1] / reduction)


def _blocks(layer: nn.Module, cls: type[nn.Module]) -> list[nn.Module]:
    return [m for m in layer.modules() if isinstance(m, cls)]


def test_registry_lists_the_paper_models():
    assert set(botnet.list_models()) == EXPECTED_MODELS
    assert len(botnet.list_models()) == 24
    assert botnet.list_models("botnet_t?") == ["botnet_t3", "botnet_t4", "botnet_t5", "botnet_t6", "botnet_t7"]


# ----------------------------------------------------------------------------------------------------------------
# Forward + backward of every preset (about 25 s in all on 2 CPU cores, so none is marked slow)


@pytest.mark.parametrize("name", botnet.list_models())
def test_every_model_trains_at_any_size(name):
    torch.manual_seed(0)
    model = botnet.create_model(name, num_classes=7, zero_init_last=False).train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for size in TRAIN_SIZES:
        model.zero_grad(set_to_none=True)
        out = model(torch.randn(2, 3, *size))
        assert out.shape == (2, 7), size
        assert torch.isfinite(out).all(), size
        out.sum().backward()
        no_grad = [n for n, p in trainable if p.grad is None]
        assert not no_grad, f"{size}: parameters outside the graph: {no_grad[:5]}"
        bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
        assert not bad, f"{size}: non-finite gradients: {bad[:5]}"
        zero = [n for n, p in trainable if not p.grad.abs().sum() > 0]
        assert not zero, f"{size}: all-zero gradients: {zero[:5]}"


# ----------------------------------------------------------------------------------------------------------------
# feature_info


def _capture_features(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    captured: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = []
    for info in model.feature_info:
        name = info["module"]

        def hook(_module, _inputs, output, name=name):
            captured[name] = output.detach().clone()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return captured


@pytest.mark.parametrize(("name", "last_reduction"), [("botnet50", 32), ("resnet50", 32), ("botnet_s1_50", 16)])
@pytest.mark.parametrize("size", [(64, 96), (65, 97)])
def test_feature_info_matches_the_maps(name, last_reduction, size):
    torch.manual_seed(0)
    model = botnet.create_model(name, num_classes=7).eval()
    info = model.feature_info
    assert [f["module"] for f in info] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert info[-1]["reduction"] == last_reduction
    assert info[-1]["num_chs"] == 2048
    captured = _capture_features(model, torch.randn(2, 3, *size))
    for f in info:
        fmap = captured[f["module"]]
        assert fmap.shape == (2, f["num_chs"], *_ceil_div(size, f["reduction"])), f


# ----------------------------------------------------------------------------------------------------------------
# timm-style API


@pytest.fixture(scope="module")
def botnet50_10():
    torch.manual_seed(0)
    return botnet.create_model("botnet50", num_classes=10).eval()


@pytest.mark.parametrize("size", [(64, 96), (65, 97)])
def test_forward_features_and_head(botnet50_10, size):
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        feats = botnet50_10.forward_features(x)
        assert feats.shape == (2, 2048, *_ceil_div(size, 32))
        pooled = botnet50_10.forward_head(feats, pre_logits=True)
        assert pooled.shape == (2, 2048)
        torch.testing.assert_close(pooled, feats.mean(dim=(2, 3)))
        logits = botnet50_10.forward_head(feats)
        assert logits.shape == (2, 10)
        torch.testing.assert_close(logits, botnet50_10(x))
    assert botnet50_10.get_classifier() is botnet50_10.fc


def test_headless_model_and_reset_classifier():
    torch.manual_seed(0)
    model = botnet.create_model("botnet50", num_classes=0).eval()
    assert isinstance(model.fc, nn.Identity)
    assert isinstance(model.get_classifier(), nn.Identity)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert model(x).shape == (2, 2048)
    model.reset_classifier(5)
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().out_features == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert isinstance(model.fc, nn.Identity)


@pytest.mark.parametrize(
    ("name", "size"),
    [("botnet_t3", 224), ("botnet_t4", 224), ("botnet_t5", 256), ("botnet_t6", 320), ("botnet_t7", 384)],
)
def test_t_presets_default_input_size(name, size):
    assert get_config(name).input_size == (size, size)


# ----------------------------------------------------------------------------------------------------------------
# Config overrides


def _runs(model: nn.Module, size=(64, 96), classes: int = 1000) -> None:
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, *size))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


def test_override_absolute_position():
    torch.manual_seed(0)
    model = botnet.create_model("botnet50", pos_enc="absolute")
    assert model.cfg.pos_enc == "absolute"
    assert any("abs_h" in k for k in model.state_dict())
    assert not any("rel_h" in k for k in model.state_dict())
    _runs(model)


def test_override_attention_in_c4_and_c5():
    torch.manual_seed(0)
    model = botnet.create_model("botnet50", attn_stages=(4, 5))
    assert all(isinstance(b, BoTBlock) for b in model.layer3)
    assert all(isinstance(b, BoTBlock) for b in model.layer4)
    assert not _blocks(model.layer2, BoTBlock)
    _runs(model)


def test_override_non_local():
    torch.manual_seed(0)
    model = botnet.create_model("resnet50", non_local=((4, 5),))
    assert isinstance(model.layer3[5].non_local, NonLocal2d)
    assert len(_blocks(model, NonLocal2d)) == 1
    _runs(model)


def test_override_no_se_in_attention():
    model = botnet.create_model("botnet_s1_50", se_in_attn=False)
    assert not _blocks(model.layer4, SqueezeExcite)
    for layer in (model.layer1, model.layer2, model.layer3):
        assert len(_blocks(layer, SqueezeExcite)) == len(layer)
    # The default keeps SE in the BoT blocks too.
    assert len(_blocks(botnet.create_model("botnet_s1_50").layer4, SqueezeExcite)) == 3


def test_unknown_override_is_a_type_error():
    with pytest.raises(TypeError, match="bogus") as info:
        botnet.create_model("botnet50", bogus=1)
    assert "depths" in str(info.value)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="Available") as info:
        botnet.create_model("botnet51")
    assert "botnet50" in str(info.value)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="heads"):
        botnet.create_model("botnet50", heads=3)


# ----------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 64, 64), r"4-D.*unsqueeze"),
        ((1, 2, 3, 64, 64), r"4-D"),
        ((2, 4, 64, 64), r"channels"),
        ((2, 3, 16, 64), r"total stride 32"),
        ((2, 3, 64, 31), r"total stride 32"),
    ],
)
def test_bad_input_is_a_value_error(botnet50_10, shape, match):
    with pytest.raises(ValueError, match=match):
        botnet50_10(torch.randn(*shape))


def test_non_tensor_input_is_a_type_error(botnet50_10):
    with pytest.raises(TypeError, match="Tensor"):
        botnet50_10([[0.0] * 64] * 64)


def test_stride_one_model_minimum_input_is_16():
    model = botnet.create_model("botnet_s1_50", num_classes=10).eval()
    _runs(model, size=(16, 16), classes=10)
    with pytest.raises(ValueError, match="total stride 16"):
        model(torch.randn(1, 3, 15, 40))


@pytest.mark.parametrize("train", [True, False])
def test_odd_c5_map_with_stride_two_attention(train):
    # 240 -> c5 input 15x15: odd map into the stride-2 BoT block (attention, then 2x2 pool).
    torch.manual_seed(0)
    model = botnet.create_model("botnet50", num_classes=10).train(train)
    with torch.set_grad_enabled(train):
        feats = model.forward_features(torch.randn(2, 3, 240, 240))
        out = model.forward_head(feats)
    assert feats.shape == (2, 2048, 8, 8)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


# ----------------------------------------------------------------------------------------------------------------
# torchvision weights


class _Opaque:
    """An arbitrary picklable object: a .pth holding it is not a plain state dict."""


def _randomise_batchnorm(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.rand_like(m.bias) - 0.5)
                m.running_mean.copy_(torch.rand_like(m.running_mean) - 0.5)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)


@pytest.fixture(scope="module")
def tv_resnet50():
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    _randomise_batchnorm(model)
    return model.eval()


def test_resnet50_matches_torchvision(tv_resnet50):
    torch.manual_seed(1)
    ours = botnet.create_model("resnet50", num_classes=1000)
    report = botnet.load_torchvision_weights(ours, tv_resnet50.state_dict())
    assert not report.not_in_source
    assert not report.unused
    assert set(report.loaded) == set(tv_resnet50.state_dict())
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = tv_resnet50(x)
        got = ours.eval()(x)
    scale = expected.abs().max().item()
    assert scale > 0
    assert (got - expected).abs().max().item() <= 1e-4 * scale


def test_botnet50_takes_every_non_attention_weight(tv_resnet50):
    source = tv_resnet50.state_dict()
    ours = botnet.create_model("botnet50")
    report = botnet.load_torchvision_weights(ours, source)
    own = ours.state_dict()
    assert report.loaded
    for key in report.loaded:
        assert torch.equal(own[key], source[key]), key
    assert report.not_in_source
    assert all(".attn." in key for key in report.not_in_source), report.not_in_source
    assert any("rel_h" in key for key in report.not_in_source)
    assert sorted(report.unused) == [f"layer4.{i}.conv2.weight" for i in range(3)]
    assert set(report.loaded) | set(report.not_in_source) == set(own)


class _OpCounter(TorchDispatchMode):
    """Counts every aten op that runs under it (forward and autograd's backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def test_resnet50_training_step_runs_torchvisions_ops():
    """The same network does the same work: a training step of our resnet50 runs exactly the aten ops of
    torchvision's, op for op in count (no extra copies, checks or layout changes in the shared blocks)."""
    counts = []
    for model in (botnet.create_model("resnet50", num_classes=10), torchvision.models.resnet50(num_classes=10)):
        x = torch.randn(2, 3, 64, 64)
        with _OpCounter() as counter:
            model.train()(x).sum().backward()
        counts.append(counter.ops)
    assert counts[0] == counts[1]
    assert counts[0]["aten.convolution.default"] == 53


def test_torchvision_weights_of_another_depth_are_refused(tv_resnet50):
    with pytest.raises(ValueError, match="layer3"):
        botnet.load_torchvision_weights(botnet.create_model("botnet101"), tv_resnet50.state_dict())


def test_torchvision_weights_from_a_pth_file(tv_resnet50, tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(tv_resnet50.state_dict(), path)
    ours = botnet.create_model("resnet50")
    report = botnet.load_torchvision_weights(ours, path)
    assert set(report.loaded) == set(tv_resnet50.state_dict())
    torch.testing.assert_close(ours.conv1.weight, tv_resnet50.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(ours.layer4[2].bn3.running_var, tv_resnet50.layer4[2].bn3.running_var, rtol=0, atol=0)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"a": _Opaque()}, path)
    model = botnet.create_model("resnet50")
    before = model.conv1.weight.detach().clone()
    with pytest.raises(ValueError, match="weights_only"):
        botnet.load_torchvision_weights(model, path)
    assert torch.equal(model.conv1.weight, before)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(non_local=(4, 5)), "non_local must be"),
        (dict(non_local=((5, 0),)), "attention stage c5"),
        (dict(depths=(3, 4, 6)), "depths must be 4"),
        (dict(attn_stages=(6,)), "attn_stages"),
        (dict(c5_stride=3), "c5_stride"),
        (dict(act="gelu"), "act must be one of"),
        (dict(pos_enc="rope"), "pos_enc must be one of"),
        (dict(img_size=(224, 224, 3)), "img_size"),
    ],
)
def test_invalid_config_values_say_what_is_allowed(overrides, match):
    with pytest.raises(ValueError, match=match):
        botnet.create_model("botnet50", **overrides)
