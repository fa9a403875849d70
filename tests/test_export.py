"""``botnet export``: one ONNX / torch.export file for every input size, checked against PyTorch independently."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import botnet
from botnet.cli.main import main
from botnet.export import ExportError, export_model, read_export_metadata
from botnet.layers import MHSA2d
from botnet.models import save_weights

CLASSES = ["cat", "dog", "fox"]
PRE = {"img_size": 32, "crop_pct": 0.875, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bicubic"}  # fmt: skip
META = {"model": "botnet_tiny", "class_names": CLASSES, "preprocess": PRE}


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights far from the initialisation (whose zero BN gammas make every block an identity), so attention,
    position tables and batch norm all shape the output; BN statistics measured on random images, as training
    would, keep the activations at a realistic scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.momentum = None  # a plain average over the calibration batches
            elif isinstance(m, MHSA2d):
                m.qkv.weight.copy_(torch.randn(m.qkv.weight.shape, generator=g) / m.dim**0.5)
                for p in m.pos.parameters() if m.pos is not None else ():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        model.train()
        for _ in range(4):
            model(torch.randn(8, 3, 32, 32, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = randomized(botnet.create_model("botnet_tiny", num_classes=3, img_size=32))
    meta = {"model_name": "botnet_tiny", "class_names": json.dumps(CLASSES), "preprocess": json.dumps(PRE)}
    save_weights(model, root / "run" / "last" / "model.safetensors", metadata=meta)
    return root / "run", model


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    # batch 1 at the eval size, batch 3 at an odd non-square size, batch 2 at a size not seen when exporting
    return [torch.randn(b, 3, h, w, generator=g) for b, h, w in ((1, 32, 32), (3, 45, 27), (2, 70, 100))]


def test_onnx_export_runs_at_every_size_from_one_file(checkpoint, capsys):
    run_dir, model = checkpoint
    assert main(["export", "--checkpoint", str(run_dir)]) == 0
    out = capsys.readouterr().out
    path = run_dir / "botnet_tiny-last.onnx"
    assert f"wrote {path}" in out and out.count("checked with onnxruntime") == 2

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "image" and inp.shape == ["batch", 3, "height", "width"]
    for x in _inputs():
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(["logits"], {"image": x.numpy()})[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    assert np.abs(ref).max() > 0.05  # the outputs are not trivially small

    # The metadata alone lets another program preprocess and name the classes.
    props = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert props["model"] == "botnet_tiny" and props["class_names"] == CLASSES
    assert props["mean"] == PRE["mean"] and props["std"] == PRE["std"]
    assert props["input_size"] == 32 and props["crop_pct"] == 0.875 and props["interpolation"] == "bicubic"
    assert props["min_input_size"] == [17, 17]  # total stride 16, plus one
    assert read_export_metadata(path) == props


def test_torch_export_file_runs_at_every_size(checkpoint, tmp_path, capsys):
    run_dir, model = checkpoint
    path = tmp_path / "tiny.pt2"
    assert main(["export", "--checkpoint", str(run_dir / "last"), "--output", str(path)]) == 0
    assert "checked with torch.export.load" in capsys.readouterr().out
    extra = {"botnet.json": ""}
    program = torch.export.load(str(path), extra_files=extra).module()
    for x in _inputs(2):
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x), atol=1e-4, rtol=0)
    meta = json.loads(extra["botnet.json"])
    assert meta["class_names"] == CLASSES and meta["num_classes"] == 3 and meta["std"] == PRE["std"]


@pytest.mark.parametrize(
    "options",
    [dict(pos_enc="absolute"), dict(content_content=False), dict(content_position=False), dict(se_ratio=0.25)],
    ids=["absolute", "position-only", "content-only", "se"],
)
def test_every_position_mode_exports_dynamic(options, tmp_path):
    model = randomized(botnet.create_model("botnet_tiny", num_classes=3, img_size=32, **options), seed=3)
    report = export_model(model, tmp_path / "m.pt2", META)
    assert len(report.checks) == 2 and all(c.max_abs_diff <= 1e-4 and c.allowed < 2e-4 for c in report.checks)
    program = torch.export.load(str(report.path)).module()
    x = torch.randn(2, 3, 51, 38)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x), atol=1e-4, rtol=0)


def test_interpolated_tables_are_refused_before_writing(tmp_path):
    model = botnet.create_model("botnet_tiny", num_classes=3, img_size=32, pos_extend="interpolate")
    with pytest.raises(ExportError, match="pos_extend='interpolate'.*'clip'"):
        export_model(model, tmp_path / "m.onnx", META)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_check_writes_nothing_and_keeps_the_old_file(checkpoint, tmp_path, capsys, monkeypatch):
    import botnet.export

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    run_dir, _ = checkpoint
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous export")
    runner = botnet.export.load_runner

    def off_by_a_little(path):  # a runtime whose results are off by 1e-3: an export that is not right
        run = runner(path)
        return lambda x: run(x) + 1e-3

    monkeypatch.setattr(botnet.export, "load_runner", off_by_a_little)
    assert main(["export", "--checkpoint", str(run_dir), "--output", str(target)]) == 2
    assert "differs from PyTorch" in capsys.readouterr().err
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left


def test_export_bad_input_is_a_clear_error(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    run_dir, _ = checkpoint
    cases = [
        (["--checkpoint", str(tmp_path / "nothing")], "does not exist"),
        (["--checkpoint", str(run_dir), "--output", str(tmp_path / "m.onnx"), "--format", "pt2"], "should end in .pt2"),
        (["--checkpoint", str(run_dir), "--output", str(tmp_path / "m.txt")], "unknown export format"),
        (["--checkpoint", str(run_dir), "--atol", "nan"], "--atol must be a finite number >= 0, got nan"),
    ]
    (tmp_path / "dir.onnx").mkdir()
    cases.append((["--checkpoint", str(run_dir), "--output", str(tmp_path / "dir.onnx")], "is an existing directory"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"not safetensors")
    cases.append((["--checkpoint", str(other)], "safetensors"))
    for args, message in cases:
        assert main(["export", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
