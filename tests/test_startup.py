"""What the ``botnet`` command imports: help, ``list``, the option parsers and option errors load no torch, and each
task's commands load only their own task (each case in a fresh interpreter, read from ``sys.modules``)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

PROBE = """
import sys
from botnet.cli import main
try:
    code = main({argv!r})
except SystemExit as exit_:
    code = exit_.code
print({watched!r}.__class__(m for m in {watched!r} if m in sys.modules), code)
"""


def run_probe(argv: list[str], watched: tuple[str, ...]) -> tuple[list[str], int | None, str]:
    """(the watched modules loaded by ``botnet ARGV``, its exit code, its stdout + stderr)."""
    code = PROBE.format(argv=argv, watched=list(watched))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    *output, last = r.stdout.rstrip("\n").split("\n")
    loaded, _, exit_code = last.rpartition("] ")
    return ast.literal_eval(loaded + "]"), ast.literal_eval(exit_code), "\n".join(output) + r.stderr


@pytest.mark.parametrize(
    ("argv", "expected_code", "expected_text"),
    [
        (["--help"], 0, "COMMAND"),
        (["list"], 0, "botnet_tiny"),
        (["list", "botnet_t?"], 0, "BoTNet-T7"),
        (["train", "--help"], 0, "--batch-size"),
        (["detect", "train", "--help"], 0, "--trainable-backbone-layers"),
        (["eval", "--help"], 0, "--checkpoint"),
        (["predict", "--help"], 0, "--max-pixels"),
        (["export", "--help"], 0, "--atol"),
        (["info", "--help"], 0, "--size"),
        (["convert", "--help"], 0, "OUT.safetensors"),
        (["list", "--pretrained"], 0, "pretrained timm:botnet26t_256.c1_in1k: ImageNet top-1 79.26% at 256"),
        (["train", "--freeze-stages", "2"], 2, "give --pretrained SOURCE too"),
        (["train", "--pretrained", "x", "--backbone-lr-scale", "2"], 2, "--backbone-lr-scale must be in (0, 1]"),
        (["train", "--mean", "0.5", "0.5"], 2, "expected 3 arguments"),
        (["train", "--amp", "fp64"], 2, "invalid choice: 'fp64'"),
        (["train", "--lr", "fast"], 2, "invalid option --lr: expected a number"),
        (["train", "--momentum", "nan"], 2, "--momentum must be a finite number in [0, 1), got nan"),
        (["train", "--image-size", "100000"], 2, "--image-size 100000 is too large"),
        (["predict", "--checkpoint", "run", "a.png", "--topk", "0"], 2, "--topk must be >= 1, got 0"),
        (["attention", "--checkpoint", "run", "a.png", "--panel", "100000"], 2, "--panel 100000 is too large"),
        (["predict", "--checkpoint", "run", "a.png", "--json", "src"], 2, "--json src is an existing directory"),
        (["train", "--config", "no-such-file.yaml"], 2, "config file no-such-file.yaml does not exist"),
        (["detect", "train", "--epochs", "-1"], 2, "--epochs must be >= 1, got -1"),
        (["detect", "train", "--config", "src"], 2, "config file src is a directory"),
        (["no-such-command"], 2, "invalid choice: 'no-such-command'"),
        (["train", "--foo", "1"], 2, "usage: botnet train [-h]"),  # the command's usage, not the top level's
        (["predict", "--checkpoint", "r", "a.png", "--topk5"], 2, "botnet predict: error: unrecognized arguments: "),
        (["detect", "train", "--pretrained", "x"], 2, "--pretrained: did you mean --weights-backbone SOURCE"),
        (["train", "--img-size", "64"], 2, "--img-size: did you mean --image-size?"),
        (["train", "--backbone-lr-scale", "0.1"], 2, "backbone_lr_scale: slows pretrained weights down: give --pretr"),
    ],
)
def test_help_list_and_option_errors_import_no_torch(argv, expected_code, expected_text):
    loaded, code, output = run_probe(argv, ("torch", "torchvision", "numpy"))
    assert (code, expected_text in output) == (expected_code, True), output
    assert loaded == [], f"botnet {' '.join(argv)} imported {loaded}"


def test_info_builds_the_model_without_torchvision():
    loaded, code, output = run_probe(["info", "botnet_tiny"], ("torch", "torchvision"))
    assert code == 0 and "params" in output, output
    assert loaded == ["torch"]


RUNNERS = {
    "classification": [
        "botnet.classification.trainer",
        "botnet.classification.checkpoints",
        "botnet.classification.predict",
        "botnet.classification.attention_figure",
        "botnet.export",
    ],
    "detection": ["botnet.detection.trainer", "botnet.detection.evaluate", "botnet.detection.predict"],
}


@pytest.mark.parametrize(("task", "other"), [("classification", "detection"), ("detection", "classification")])
def test_a_task_s_commands_import_only_that_task(task, other):
    code = f"import importlib, sys\nfor m in {RUNNERS[task]!r}: importlib.import_module(m)\n"
    code += "print(sorted(m for m in sys.modules if m.startswith('botnet.')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    loaded = ast.literal_eval(r.stdout.strip().splitlines()[-1])
    assert any(m.startswith(f"botnet.{task}.") for m in loaded)
    assert not [m for m in loaded if m.startswith((f"botnet.{other}", "botnet.cli"))]


def test_the_command_line_s_plain_defaults_are_the_library_s():
    """The CLI states a few library constants as plain values so its help needs no torch; they must agree."""
    from botnet.cli import export_cmd, predict_cmd
    from botnet.data.folder import DEFAULT_MAX_PIXELS
    from botnet.export import DEFAULT_ATOL, FORMATS
    from botnet.layers import ACTIVATION_NAMES, ACTIVATIONS

    assert predict_cmd.DEFAULT_MAX_PIXELS == DEFAULT_MAX_PIXELS
    assert (tuple(FORMATS), DEFAULT_ATOL) == (export_cmd.FORMATS, export_cmd.DEFAULT_ATOL)
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
