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
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "notes.jpg")]) == 1  # every file failed
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'notes.jpg'}: cannot identify image file" in err and "BytesIO" not in err
    assert "none of the 1 images could be predicted" in err and "Traceback" not in err
    assert main(["predict", "--checkpoint", str(ckpt), str(tmp_path / "missing.png")]) == 1
    assert f"{tmp_path / 'missing.png'}: does not exist" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.safetensors").write_bytes(b"garbage")
    assert main(["predict", "--checkpoint", str(tmp_path / "other"), str(tmp_path / "tiny.png")]) == 2
    assert "safetensors" in capsys.readouterr().err


def test_bad_files_are_named_and_the_good_ones_predicted(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    monkeypatch.chdir(tmp_path)
    ckpt, _ = checkpoint
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in [("a.png", (40, 56)), ("b.JPG", (48, 40)), ("c.gif", (40, 40)), ("one.png", (1, 1))]:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    (photos / "bad.jpg").write_text("name,value\n1,2\n")
    (photos / "empty.png").write_bytes(b"")
    given = ["photos/a.png", "photos/bad.jpg", "photos/c.gif", "photos/empty.png", "photos", "photos/b.JPG"]
    assert main(["predict", "--checkpoint", str(ckpt), *given, "--json", "p.json"]) == 1
    out, err = capsys.readouterr()
    assert [r["image"] for r in json.loads((tmp_path / "p.json").read_text())] == ["photos/a.png", "photos/b.JPG"]
    assert [line.split(" (")[0] for line in out.splitlines()] == ["photos/a.png", "photos/b.JPG"]
    assert [line for line in err.splitlines() if not line.startswith("warning:")] == [  # (no manifest in the fixture)
        "error: photos/bad.jpg: cannot identify image file (not an image, or a format Pillow cannot read)",
        "error: photos/c.gif: .gif is not an image type training reads (.jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, "
        ".tiff, .webp); convert it to one of them",
        "error: photos/empty.png: the file is empty (0 bytes)",
        "error: photos: is a directory; give the image files in it (photos/*.jpg)",
        "botnet predict: 4 of 6 images could not be predicted (see above); the results hold the other 2",
    ]

    given = ["photos/one.png", "photos/a.png", "--native-size", "--json", "-"]
    assert main(["predict", "--checkpoint", str(ckpt), *given]) == 1
    out, err = capsys.readouterr()
    assert [r["image"] for r in json.loads(out)] == ["photos/a.png"]
    assert "error: photos/one.png: the image is 1x1, smaller than the network's total stride 16" in err
    assert "leave out --native-size" in err and "1 of 2 images could not be predicted" in err


def test_predict_takes_exactly_the_image_types_training_reads(tmp_path):
    """A folder of every type predict takes, and a .gif: training collects exactly the types predict takes."""
    from botnet.data.folder import ImageFolderDataset
    from botnet.data.image_files import TRAINING_EXTENSIONS

    names = [f"x{ext.upper() if i % 2 else ext}" for i, ext in enumerate(TRAINING_EXTENSIONS)] + ["x.gif"]
    for name in names:
        (tmp_path / "train" / "cat").mkdir(parents=True, exist_ok=True)
        (tmp_path / "train" / "cat" / name).write_bytes(b"")
    collected = {p.rsplit("/", 1)[-1] for p, _ in ImageFolderDataset(tmp_path, "train").samples}
    assert collected == set(names) - {"x.gif"}
