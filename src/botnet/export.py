"""Export a trained classifier to ONNX or to a ``torch.export`` program, dynamic in batch, height and width.

Both formats go through ``torch.export`` with symbolic batch, height and width, so ONE file serves every input
size, as the PyTorch model does. The attention layers run their explicit ("math") backend in the exported graph;
the relative-position tables and the odd-size pooling are written without size-dependent branches for this.

Every file carries what another program needs to use it without this package (:func:`export_metadata`): the
model name, class names, preprocessing (mean, std, input size, crop fraction, interpolation) and the smallest
input it accepts. In ONNX these are ``metadata_props`` (each value JSON), readable with
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``; in a ``.pt2`` file they are the extra
file ``botnet.json``, read with ``torch.export.load(path, extra_files={"botnet.json": ""})``.

The file is written next to its destination under a temporary name, checked (the exported model run at two input
sizes and batch sizes must match PyTorch within ``atol``), and only then renamed into place: a failed or
interrupted export leaves no file and never replaces a good one.

The ONNX opset is the one asked for or refused: :func:`supported_opsets` is what the installed exporter writes
(torch.onnx's dynamo exporter implements its operators in opset 18 and declares versions up to its
``ONNX_MAX_OPSET``; asked for less, it silently writes 18, and asked for more it fails its version conversion and
writes 18 as well). Any other opset is refused before any work, and the written file's opset is checked.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import __version__
from .files import atomic_output
from .layers import MHSA2d, RelativePosition2d

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
METADATA_FILE = "botnet.json"  # the extra file of a .pt2 archive
DEFAULT_ATOL = 1e-4


# What torch 2.15's exporter gives, for a torch whose private constants have moved.
_FALLBACK_OPSETS = (18, 23, 20)  # (lowest, highest, default)


class ExportError(RuntimeError):
    """An export that could not be written or did not reproduce the PyTorch model."""


def _exporter_opsets() -> tuple[int, int, int]:
    """(lowest, highest, default) opset of the installed torch.onnx dynamo exporter."""
    try:
        from torch.onnx import _constants as onnx_constants
        from torch.onnx._internal.exporter import _constants as exporter_constants

        return (
            int(exporter_constants.TORCHLIB_OPSET),
            int(onnx_constants.ONNX_MAX_OPSET),
            int(onnx_constants.ONNX_DEFAULT_OPSET),
        )
    except (ImportError, AttributeError):  # pragma: no cover - another torch layout
        return _FALLBACK_OPSETS


def supported_opsets() -> range:
    """The ONNX opsets an export can be written in: from the opset torch.onnx's operators are implemented in (18) to
    the highest torch declares (23 in torch 2.15), within what the installed ``onnx`` package knows."""
    low, high, _ = _exporter_opsets()
    try:
        import onnx

        high = min(high, int(onnx.defs.onnx_opset_version()))
    except ImportError:
        pass
    return range(low, high + 1)


def default_opset() -> int:
    """The opset written when none is asked for: the exporter's default (20 in torch 2.15), within the range."""
    supported = supported_opsets()
    return min(max(_exporter_opsets()[2], supported.start), supported.stop - 1)


def check_opset(opset: Any) -> int:
    """``opset`` if the exporter can write it (``None``: :func:`default_opset`); otherwise an error with the range."""
    if opset is None:
        return default_opset()
    supported = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"--opset must be an integer opset version, got {opset!r}")
    if opset not in supported:
        raise ValueError(
            f"--opset {opset} is not supported: the installed ONNX exporter (torch {torch.__version__}) writes opsets "
            f"{supported.start} to {supported.stop - 1}; pass one of these, or leave --opset out for "
            f"{default_opset()}"
        )
    return opset


@dataclass
class Check:
    """One verification run at input ``shape``: the largest |exported - PyTorch| logit difference, PyTorch fp32's own
    largest error against the same model in fp64, the largest logit, and the difference allowed."""

    shape: tuple[int, ...]
    max_abs_diff: float
    fp32_error: float
    max_abs_ref: float
    allowed: float


@dataclass
class ExportReport:
    path: Path
    format: str
    size_bytes: int
    metadata: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    atol: float = DEFAULT_ATOL
    opset: int | None = None  # the ONNX opset of the file (None for .pt2)

    def summary(self) -> str:
        meta = self.metadata
        kind = f"{self.format}, opset {self.opset}" if self.opset is not None else self.format
        lines = [
            f"wrote {self.path} ({self.size_bytes / 2**20:.1f} MiB, {kind}): {meta['model']}, "
            f"{meta['num_classes']} classes, input (batch, 3, height, width) with height, width >= "
            f"{meta['min_input_size'][0]}"
        ]
        runner = "onnxruntime" if self.format == "onnx" else "torch.export.load"
        for c in self.checks:
            lines.append(
                f"  checked with {runner} at {'x'.join(map(str, c.shape))}: max |diff| {c.max_abs_diff:.2e} "
                f"(allowed {c.allowed:.2e}: {self.atol:g} x max(1, largest logit {c.max_abs_ref:.2f}) + PyTorch "
                f"fp32's own error {c.fp32_error:.2e} against fp64)"
            )
        if not self.checks:
            lines.append("  not checked (verification turned off)")
        return "\n".join(lines)


def min_input_size(model: nn.Module) -> int:
    """The smallest height / width an exported model accepts: one more than the total stride.

    The exported graph assumes every feature map has more than one row and column (``torch.export`` specialises
    shape-1 dimensions), so the stride-32 map needs at least 2 rows: 33 px for the paper's models. PyTorch itself
    also takes exactly the stride (a 1x1 last map).
    """
    return int(model.cfg.total_stride) + 1


def export_metadata(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready description of an exported classifier: model, classes, preprocessing, input and output."""
    pre = dict(meta.get("preprocess") or {})
    smallest = min_input_size(model)
    return {
        "model": meta["model"],
        "num_classes": int(model.num_classes),
        "class_names": meta.get("class_names"),
        "mean": pre.get("mean"),
        "std": pre.get("std"),
        "input_size": pre.get("img_size"),
        "crop_pct": pre.get("crop_pct"),
        "interpolation": pre.get("interpolation"),
        "min_input_size": [smallest, smallest],
        "input": f"{INPUT_NAME}: float32 (batch, 3, height, width), RGB scaled to [0, 1], then (x - mean) / std",
        "output": f"{OUTPUT_NAME}: float32 (batch, num_classes), unnormalised class scores (softmax for probabilities)",
        "eval_transform": "resize the shorter side to input_size / crop_pct, center-crop input_size (or any size "
        ">= min_input_size as is)",
        "botnet_version": __version__,
        "torch_version": torch.__version__,
    }


def _inference_copy(model: nn.Module) -> nn.Module:
    """A copy of the model in eval mode with every attention layer on the explicit backend (exportable at any
    size); the caller's model is left as it is."""
    model = copy.deepcopy(model).eval()
    for name, module in model.named_modules():
        if isinstance(module, RelativePosition2d) and module.extend == "interpolate":
            raise ExportError(
                f"{name} stretches its relative position tables for larger maps (pos_extend='interpolate'); that "
                "rule depends on whether a map is larger than the tables' reference size, and an exported graph keeps "
                "only one side of it, so it would be wrong at other sizes. Models with pos_extend='clip' (the "
                "default) or absolute positions export at any size"
            )
        if isinstance(module, MHSA2d):
            module.backend = "math"
    return model


def _export_program(model: nn.Module, sample: Tensor) -> torch.export.ExportedProgram:
    from torch.export import Dim

    dynamic = {"x": {0: Dim("batch", min=1, max=65536), 2: Dim.AUTO, 3: Dim.AUTO}}
    # The shape solver logs, with tracebacks, the inequalities it leaves to runtime checks; they are not errors.
    solver_log = logging.getLogger("torch.fx.experimental.symbolic_shapes")
    level = solver_log.level
    solver_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            return torch.export.export(model, (sample,), dynamic_shapes=dynamic)
    except Exception as err:  # noqa: BLE001 - torch.export's failures are many; name the step and the cause
        raise ExportError(f"torch.export could not trace {type(model).__name__}: {type(err).__name__}: {err}") from err
    finally:
        solver_log.setLevel(level)


def verification_sizes(model: nn.Module, input_size: int | Sequence[int] | None) -> list[tuple[int, int, int]]:
    """Two (batch, height, width) shapes to check an export at: the eval size, and an odd non-square size."""
    if input_size is None:
        h = w = 224
    elif isinstance(input_size, int):
        h = w = input_size
    else:
        h, w = int(input_size[0]), int(input_size[-1])
    stride, smallest = int(model.cfg.total_stride), min_input_size(model)
    return [(1, h, w), (2, h + stride + 3, max(smallest, (3 * w) // 4 + 1))]


def onnx_opset(proto: Any) -> int | None:
    """The default-domain (``ai.onnx``) opset version of an ONNX ``ModelProto``."""
    return next((int(entry.version) for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)


def _write_onnx(ep: torch.export.ExportedProgram, path: Path, metadata: dict[str, Any], opset: int) -> None:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx and onnxscript packages: pip install 'botnet[export]'") from None
    try:
        program = torch.onnx.export(
            ep, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset, verbose=False
        )
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"the ONNX conversion failed: {type(err).__name__}: {err}") from err
    program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    written = onnx_opset(proto)
    if written != opset:
        raise ExportError(
            f"the ONNX exporter wrote opset {written}, not the opset {opset} asked for; nothing was written (opsets "
            f"{supported_opsets().start} to {supported_opsets().stop - 1} are supported)"
        )
    # torch.export names the symbolic sizes s0, s1, ...; give them the names users look for.
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = {dims[i].dim_param: new for i, new in ((0, "batch"), (2, "height"), (3, "width")) if dims[i].dim_param}
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = f"botnet {metadata['model']} classifier; metadata values are JSON"
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path))


def _write_pt2(ep: torch.export.ExportedProgram, path: Path, metadata: dict[str, Any]) -> None:
    torch.export.save(ep, str(path), extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})


def load_runner(path: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function float32 NCHW array -> logits array, running the exported file alone (onnxruntime or torch)."""
    path = Path(path)
    if path.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("checking an ONNX file needs onnxruntime: pip install 'botnet[export]'") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    program = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return program(torch.from_numpy(x)).numpy()

    return run


def read_export_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an exported file (:func:`export_metadata`), read without building any model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return {p.key: json.loads(p.value) for p in proto.metadata_props}
    extra = {METADATA_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[METADATA_FILE])


def verify_export(
    path: Path, model: nn.Module, shapes: Sequence[tuple[int, int, int]], atol: float = DEFAULT_ATOL
) -> list[Check]:
    """Run the exported file and the PyTorch model on the same random inputs; raise if they differ by too much.

    Allowed: ``atol`` times the largest logit (when that exceeds 1), plus PyTorch fp32's own largest error against
    the same model run in fp64. The second term is float32 rounding, which grows with depth and is about 1e-6 for
    a trained network but can exceed 1e-4 for a deep one with random weights; a wrong export differs by far more.
    """
    run = load_runner(path)
    exact = copy.deepcopy(model).double()
    generator = torch.Generator().manual_seed(0)
    checks = []
    for batch, h, w in shapes:
        x = torch.randn(batch, 3, h, w, generator=generator)
        with torch.no_grad():
            ref = model(x).numpy()
            ref64 = exact(x.double()).numpy()
        try:
            out = run(x.numpy())
        except Exception as err:  # noqa: BLE001 - the runtime's own error, with the shape that caused it
            raise ExportError(
                f"the exported file failed at input {batch}x3x{h}x{w}: {type(err).__name__}: {err}"
            ) from err
        if out.shape != ref.shape:
            raise ExportError(f"the exported file gave shape {out.shape} at input {batch}x3x{h}x{w}, not {ref.shape}")
        largest, fp32_error = float(np.abs(ref).max()), float(np.abs(ref - ref64).max())
        allowed = atol * max(1.0, largest) + fp32_error
        check = Check((batch, 3, h, w), float(np.abs(out - ref).max()), fp32_error, largest, allowed)
        if not check.max_abs_diff <= allowed:  # also catches NaN
            raise ExportError(
                f"the exported file differs from PyTorch by {check.max_abs_diff:.3g} (> {allowed:.3g} allowed) at "
                f"input {batch}x3x{h}x{w}; nothing was written"
            )
        checks.append(check)
    return checks


def export_model(
    model: nn.Module,
    path: str | Path,
    meta: dict[str, Any],
    *,
    format: str | None = None,
    verify: bool = True,
    atol: float = DEFAULT_ATOL,
    opset: int | None = None,
) -> ExportReport:
    """Export ``model`` (a BoTNet classifier) to ``path``; ``meta`` holds ``model``, ``class_names``, ``preprocess``.

    ``format`` is "onnx" or "pt2" (default: from the file suffix). The file appears only once complete and checked.
    ``opset`` (ONNX only) must be in :func:`supported_opsets`; ``None`` writes :func:`default_opset`.
    """
    path = Path(path)
    if not atol >= 0:
        raise ValueError(f"--atol must be >= 0, got {atol}")
    format = format or {v: k for k, v in FORMATS.items()}.get(path.suffix)
    if format not in FORMATS:
        raise ValueError(
            f"unknown export format for {path}: give --format {' or '.join(FORMATS)} or a file ending "
            f"in {' or '.join(FORMATS.values())}"
        )
    if path.suffix != FORMATS[format]:
        raise ValueError(f"a {format} file should end in {FORMATS[format]}, got {path.name}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory: give a file name ending in {FORMATS[format]}")
    if format == "onnx":
        opset = check_opset(opset)
    elif opset is not None:
        raise ValueError(f"--opset applies to ONNX files only, not to {format}; drop it or export to .onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _inference_copy(model)
    metadata = export_metadata(model, meta)
    shapes = verification_sizes(model, metadata["input_size"])
    sample = torch.randn(2, 3, *shapes[0][1:])  # batch 2: a traced batch of 1 would be fixed at 1
    ep = _export_program(model, sample)
    with atomic_output(path, suffix=path.suffix) as tmp:
        if format == "onnx":
            _write_onnx(ep, tmp, metadata, opset)
        else:
            _write_pt2(ep, tmp, metadata)
        checks = verify_export(tmp, model, shapes, atol) if verify else []
    return ExportReport(path, format, path.stat().st_size, metadata, checks, atol, opset)


def export_checkpoint(checkpoint: str | Path, output: str | Path | None = None, *, ema: bool = False, **kwargs):
    """Export a ``botnet train`` checkpoint, or a weights file written by ``botnet convert``; ``output`` defaults to
    ``<run dir>/<model>-<last|best>.onnx`` (``<file stem>.onnx`` beside a weights file)."""
    from .classification.checkpoints import load_checkpoint_model

    model, meta, ckpt_dir = load_checkpoint_model(checkpoint, ema=ema)
    if output is None:
        suffix = FORMATS[kwargs.get("format") or "onnx"]
        output = (
            ckpt_dir.with_suffix(suffix)
            if ckpt_dir.is_file()
            else ckpt_dir.parent / (f"{meta['model']}-{ckpt_dir.name}{'-ema' if ema else ''}{suffix}")
        )
    return export_model(model, output, meta, **kwargs)
