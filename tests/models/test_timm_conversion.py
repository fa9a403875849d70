"""timm's BoTNet-family checkpoints converted into our presets: the same logits at 256x256, and any other size."""

from __future__ import annotations

import pytest
import torch
from timm_helpers import TIMM_ALL, random_timm

import botnet
from botnet.models import BoTNet, convert_timm_state_dict, get_config

REL_TOL = 1e-4  # of the largest logit, fp32


def _converted(name: str, timm_model: torch.nn.Module, **overrides) -> BoTNet:
    state, unmapped = convert_timm_state_dict(timm_model.state_dict())
    assert not unmapped
    ours = botnet.create_model(name, **overrides).eval()
    ours.load_state_dict(state, strict=True)
    return ours


@pytest.mark.parametrize("name", TIMM_ALL)
def test_presets_have_timms_parameter_count(name):
    ours = botnet.create_model(name)
    theirs = random_timm(name, 0)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", TIMM_ALL)
def test_converted_logits_equal_timms_at_256(name, seed):
    theirs = random_timm(name, seed)
    ours = _converted(name, theirs)
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    scale = expected.abs().max()
    assert scale > 1e-2  # logits of a network whose blocks all matter
    assert (got - expected).abs().max() <= REL_TOL * scale


def test_unscaled_position_tables_would_be_caught():
    """The equality test can fail: skipping the rescale of the position tables changes the logits beyond REL_TOL."""
    theirs = random_timm("botnet26t_256", 0)
    state, _ = convert_timm_state_dict(theirs.state_dict())
    for key in state:
        if key.endswith(("rel_h", "rel_w")):
            state[key] = state[key] / state[key].shape[1] ** 0.5
    ours = botnet.create_model("botnet26t_256").eval()
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert (got - expected).abs().max() > 10 * REL_TOL * expected.abs().max()


@pytest.fixture(scope="module")
def sebotnet_pair():
    theirs = random_timm("sebotnet33ts_256", 0)
    return theirs, _converted("sebotnet33ts_256", theirs)


@pytest.mark.parametrize("size", [(224, 224), (320, 320), (257, 191)])
def test_ours_runs_where_timm_refuses(size, sebotnet_pair):
    theirs, ours = sebotnet_pair
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        with pytest.raises((AssertionError, RuntimeError)):
            theirs(x)
        out = ours(x)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_a_smaller_reference_size_resizes_the_tables_exactly():
    """Built for 224, the converted tables are cropped (exact for the offsets a 224 input has)."""
    theirs = random_timm("botnet26t_256", 0)
    at_256 = _converted("botnet26t_256", theirs)
    at_224 = botnet.create_model("botnet26t_256", img_size=224).eval()
    report = botnet.models.load_pretrained(at_224, theirs.state_dict())
    assert sorted(report.resized) == sorted(k for k in at_224.state_dict() if k.endswith(("rel_h", "rel_w")))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(at_224(x), at_256(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize(("name", "pool"), [("botnet26t_256", True), ("sebotnet33ts_256", False)])
def test_feature_info_covers_the_tiered_stem(name, pool):
    model = botnet.create_model(name).eval()
    assert get_config(name).stem_pool is pool
    modules = dict(model.named_modules())
    maps = {}
    handles = [
        modules[i["module"]].register_forward_hook(lambda m, a, out, n=i["module"]: maps.__setitem__(n, out.shape))
        for i in model.feature_info
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 96))
    for h in handles:
        h.remove()
    assert [i["reduction"] for i in model.feature_info] == [2, 4, 8, 16, 32]
    for info in model.feature_info:
        shape = maps[info["module"]]
        assert shape[1] == info["num_chs"]
        assert tuple(shape[2:]) == (128 // info["reduction"], 96 // info["reduction"])
