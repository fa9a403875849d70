"""Run directories written by an earlier version of the library still load: eval, predict and resume.

tests/fixtures/written_runs/ holds two small runs on the built-in data (a classifier and a detector with narrow
widths, ``model_args``), written by ``botnet train`` / ``botnet detect train`` before the options were renamed
(the classifier's config.yaml says ``img_size``). They are kept as written: what a user has on disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

WRITTEN = Path(__file__).parent / "fixtures" / "written_runs"


@pytest.fixture
def runs(tmp_path) -> Path:
    shutil.copytree(WRITTEN, tmp_path / "runs")
    return tmp_path / "runs"


def _recorded(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_classifier_run_evaluates_to_its_recorded_numbers(cli, runs):
    status, _, err = cli("eval", "--checkpoint", runs / "cls")
    assert status == 0, err
    result = json.loads((runs / "cls" / "eval.json").read_text())
    assert result["integrity"] == "verified"
    assert result["top1"] == pytest.approx(_recorded(runs / "cls")["val_top1"])


def test_detector_run_evaluates_to_its_recorded_numbers(cli, runs):
    status, _, err = cli("detect", "eval", "--checkpoint", runs / "det")
    assert status == 0, err
    result = json.loads((runs / "det" / "eval.json").read_text())
    assert result["integrity"] == "verified"
    assert result["bbox"]["AP"] == pytest.approx(_recorded(runs / "det")["val_bbox_AP"])


def test_written_runs_predict(cli, runs, tmp_path):
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (80, 64), (120, 30, 200)).save(image)
    status, out, err = cli("predict", "--checkpoint", runs / "cls", image)
    assert status == 0, err
    assert "x.png" in out
    status, out, err = cli("detect", "predict", "--checkpoint", runs / "det", image, "--output", tmp_path / "pred")
    assert status == 0, err


@pytest.mark.parametrize("command", [("train",), ("detect", "train")])
def test_written_runs_resume_and_extend(cli, runs, command):
    run = runs / ("cls" if command == ("train",) else "det")
    status, _, err = cli(*command, "--resume", run, "--epochs", "2")
    assert status == 0, err
    assert [row["epoch"] for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2]
