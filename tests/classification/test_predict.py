"""``botnet predict``: top-k classes of image files from a checkpoint, at the eval size or each image's own size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import botnet
from botnet.cli.main import main
from botnet.models import save_weights

CLASSES = ["cat", "dog", "fox"]
PRE = {"img_size": 32, "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = botnet.create_model("botnet_tiny", num_classes=3, img_size=32)
    meta = {"model_name": "botnet_tiny", "class_names": json.dumps(CLASSES), "preprocess": json.dumps(PRE)}
    save_weights(model, tmp_path / "ckpt" / "model.safetensors", metadata=meta)
    return tmp_path / "ckpt", model.eval()


def test_predict_topk_matches_the_model(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    ckpt, model = checkpoint
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = tmp_path / "p.json"
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "a.png"), "--topk", "2", "--json", str(out)]) == 0
    assert "a.png (32x32)" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())
    # Independently: resize the shorter side to 32, center-crop 32x32, normalise, softmax.
    x = torch.from_numpy(pixels).permute(2, 0, 1).float()[None]  # 0..255
    x = torch.nn.functional.interpolate(x, size=(32, 44), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255) / 255  # the image stays uint8 through the resize
    x = (x[..., 6:38] - 0.5) / 0.25  # center 32 of 44 columns
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = probs.topk(2)
    assert [t["class"] for t in result["top"]] == [CLASSES[i] for i in top.indices]
    assert [t["probability"] for t in result["top"]] == pytest.approx(top.values.tolist(), abs=2e-3)

    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "a.png"), "--native-size", "--json", "-"]) == 0
    (native,) = json.loads(capsys.readouterr().out)
    assert native["input_size"] == [40, 56] and len(native["top"]) == 3  # topk capped at the class count
    assert sum(t["probability"] for t in native["top"]) == pytest.approx(1.0, abs=1e-5)


def test_predict_bad_input_is_a_clear_error(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    ckpt, _ = checkpoint
    (tmp_path / "notes.jpg").write_text("not an image")
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "notes.jpg")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "tiny.png"), "--native-size"]) == 2
    assert "total stride" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.safetensors").write_bytes(b"garbage")
    assert main(["predict", "--checkpoint", str(tmp_path / "other"), str(tmp_path / "tiny.png")]) == 2
    assert "safetensors" in capsys.readouterr().err
