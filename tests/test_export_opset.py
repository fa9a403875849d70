"""``--opset`` is the opset of the written ONNX file, or refused with the supported range before any work."""

from __future__ import annotations

import onnx
import pytest

import botnet
from botnet import export
from botnet.export import ExportError, check_opset, default_opset, export_model, onnx_opset, supported_opsets

PRE = {"img_size": 32, "crop_pct": 0.875, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
META = {"model": "botnet_tiny", "class_names": ["a", "b", "c"], "preprocess": PRE}


@pytest.fixture(scope="module")
def model():
    return botnet.create_model("botnet_tiny", num_classes=3, img_size=32).eval()


def test_supported_range_is_the_installed_exporters():
    from torch.onnx import _constants as onnx_constants
    from torch.onnx._internal.exporter import _constants as exporter_constants

    supported = supported_opsets()
    assert supported.start == exporter_constants.TORCHLIB_OPSET == 18
    assert supported.stop - 1 == min(onnx_constants.ONNX_MAX_OPSET, onnx.defs.onnx_opset_version()) == 23
    assert default_opset() == onnx_constants.ONNX_DEFAULT_OPSET == 20
    assert check_opset(None) == 20


@pytest.mark.parametrize("opset", [7, 17, 24, 999, -1])
def test_unsupported_opset_is_refused_before_any_work(model, tmp_path, opset, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError("the export started")

    monkeypatch.setattr(export, "_export_program", no_export)
    with pytest.raises(ValueError, match=rf"--opset {opset} is not supported: .* writes opsets 18 to 23; .* for 20"):
        export_model(model, tmp_path / "m.onnx", META, opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_opset_of_a_wrong_type_or_format_is_refused(model, tmp_path):
    with pytest.raises(TypeError, match="--opset must be an integer"):
        check_opset(True)
    with pytest.raises(ValueError, match="--opset applies to ONNX files only"):
        export_model(model, tmp_path / "m.pt2", META, opset=18)


@pytest.mark.parametrize("opset", [None, 18, 23])
def test_written_file_has_the_opset_asked_for(model, tmp_path, opset):
    path = tmp_path / "m.onnx"
    report = export_model(model, path, META, opset=opset)
    expected = 20 if opset is None else opset
    assert onnx_opset(onnx.load(str(path))) == expected
    assert report.opset == expected and f"onnx, opset {expected}" in report.summary()
    assert len(report.checks) == 2  # and it still runs as the PyTorch model does


def test_an_opset_the_exporter_does_not_write_is_caught_after_writing(model, tmp_path, monkeypatch):
    # Were 999 taken as supported, the exporter would fail its conversion and write opset 18: the check after
    # writing catches it and nothing is left behind.
    monkeypatch.setattr(export, "supported_opsets", lambda: range(18, 1000))
    with pytest.raises(ExportError, match="the ONNX exporter wrote opset 18, not the opset 999 asked for"):
        export_model(model, tmp_path / "m.onnx", META, opset=999, verify=False)
    assert list(tmp_path.iterdir()) == []
