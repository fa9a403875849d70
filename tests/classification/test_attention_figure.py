"""``botnet attention``: the PNG of where queries attend, per head, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import botnet
from botnet.classification.attention_figure import draw_attention
from botnet.cli.main import main
from botnet.data.shapes import render_shape_image
from botnet.models import AttentionMap, save_weights

PRE = {"img_size": 64, "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention")
    torch.manual_seed(0)
    model = botnet.create_model("botnet_tiny", num_classes=3, img_size=64)
    meta = {"model_name": "botnet_tiny", "class_names": json.dumps(["a", "b", "c"]), "preprocess": json.dumps(PRE)}
    save_weights(model, root / "ckpt" / "model.safetensors", metadata=meta)
    image, _ = render_shape_image(0, "val", 3, size=80)
    image.save(root / "shape.png")
    return root / "ckpt", root / "shape.png"


def test_attention_png_has_one_panel_per_head_and_query(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt, image = checkpoint
    args = ["attention", "--checkpoint", str(ckpt), str(image), "--query", "0,0", "--query", "3,2", "--panel", "96"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # botnet_tiny: c5 at stride 16, so the 64x64 eval crop gives a 4x4 map; 4 heads
    assert "layer4.0.attn: 4x4 map (4 heads) of a 64x64 input, queries (0, 0), (3, 2)" in out
    with Image.open(tmp_path / "shape-attention.png") as png:
        assert png.format == "PNG" and png.size == (5 * 96, 2 * 96)  # (heads + image) x queries
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.std() > 10  # a picture, not a blank canvas

    assert main(["attention", "--checkpoint", str(ckpt), str(image), "--native-size", "--output", "n.png"]) == 0
    assert "5x5 map (4 heads) of a 80x80 input, queries (2, 2)" in capsys.readouterr().out  # default: the centre


def test_heat_maps_show_the_queried_row_of_probabilities(tmp_path):
    """A map that puts all of query (0, 1)'s weight on key (1, 0): only that cell glows in the head panels."""
    probs = torch.full((1, 2, 4, 4), 0.25)
    probs[0, :, 1] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # query (0, 1) -> key (1, 0) on a 2x2 map
    image = torch.zeros(3, 40, 40)
    size = draw_attention(image, AttentionMap(probs, (2, 2)), [(0, 1)], tmp_path / "a.png", panel=40,
                          interpolation="nearest")  # fmt: skip
    assert size == (120, 40)
    with Image.open(tmp_path / "a.png") as png:
        rgb = np.asarray(png.convert("RGB")).astype(float)
    head = rgb[:, 40:80]
    hot, cold = head[26:34, 6:14].mean(), head[26:34, 26:34].mean()  # inside key cell (1, 0) vs cell (1, 1)
    assert hot > cold + 50


def test_attention_bad_input_is_a_clear_error(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    monkeypatch.chdir(tmp_path)
    ckpt, image = checkpoint
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        (["--layer", "layer3.0.attn"], "valid: layer4.0.attn"),
        (["--query", "4,0"], "outside layer4.0.attn's 4x4 feature map"),
        (["--query", "1;2"], "ROW,COL"),
        (["--output", "x.jpg"], ".png"),
    ]
    for args, message in cases:
        assert main(["attention", "--checkpoint", str(ckpt), str(image), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    assert main(["attention", "--checkpoint", str(ckpt), str(tmp_path / "notes.png")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["attention", "--checkpoint", str(tmp_path), str(image)]) == 2
    assert "not a botnet checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png"]  # nothing was written
