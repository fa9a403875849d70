"""``benchmarks/detection.py --quick`` end to end, through a subprocess as a user runs it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "detection.py"


# Four fresh processes each building a Mask R-CNN and running one 256 px step (the mask head alone is ~50 GMACs):
# about 1 min on 2 idle cores, 2 min on busy ones.
@pytest.mark.slow
def test_quick_run_reports_both_models(tmp_path):
    out = tmp_path / "detection"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "batch 1" in result.stdout
    assert "BoT50 / R50 at 256 px" in result.stdout
    assert "paper at 1024 px" in result.stdout

    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["sizes"] == [256] and record["settings"]["batch"] == 1
    table = record["table"]
    assert [row["model"] for row in table] == ["Mask R-CNN R50-FPN", "Mask R-CNN BoT50-FPN"]
    for row in table:
        assert row["size"] == 256 and row["train_steps"] == 1 and row["infer_steps"] == 1
        for key in ("train_s_median", "train_peak_mib", "train_abs_peak_mib", "infer_s_median", "infer_peak_mib"):
            assert row[key] > 0, (key, row)
        for key in ("backbone_gmacs", "train_forward_gmacs", "train_x_r50", "infer_x_r50", "backbone_macs_x_r50"):
            assert row[key] > 0, (key, row)
    assert table[0]["train_x_r50"] == 1.0  # R50 is the denominator
    bot, r50 = table[1], table[0]
    assert bot["backbone_macs_x_r50"] == pytest.approx(bot["backbone_gmacs"] / r50["backbone_gmacs"], abs=0.01)
    assert {(c["model"], c["mode"]) for c in record["children"]} == {
        (model, mode) for model in ("resnet50", "botnet50") for mode in ("train", "infer")
    }
    assert all(n == 100 for c in record["children"] if c["mode"] == "infer" for n in c["detections"])

    with open(out.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == [row["model"] for row in table]
