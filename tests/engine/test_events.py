"""TensorBoard event files read back with tensorboard's own reader: the numbers of metrics.jsonl, the images, the
options; a resumed run's steps stay in order; no tensorboard package is one warning."""

from __future__ import annotations

import json
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from botnet.classification import TrainConfig, train
from botnet.engine import build_config
from botnet.engine.events import EVENTS_DIR, EventLog
from train_helpers import FAST, train_until_killed


def read_events(run) -> EventAccumulator:
    events = EventAccumulator(str(run / EVENTS_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    return events.Reload()


def rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_event_files_hold_the_metrics_the_images_and_the_options(tmp_path):
    run = tmp_path / "run"
    train(build_config(config_cls=TrainConfig, **dict(FAST, log_interval=2), output=str(run)))
    events = read_events(run)
    for row in rows(run):
        for key, value in row.items():
            if key not in ("epoch", "global_step"):
                (scalar,) = [e for e in events.Scalars(key) if e.step == row["global_step"]]
                assert scalar.value == pytest.approx(value, rel=1e-6), key
    assert [e.step for e in events.Scalars("step/loss")] == [2, 4, 6, 8, 10, 12]  # 6 steps an epoch, every 2nd
    assert [e.step for e in events.Images("confusion_matrix")] == [6, 12]
    assert "options/text_summary" in events.Tags()["tensors"]
    assert len(list((run / EVENTS_DIR).iterdir())) == 1


def test_a_resumed_run_continues_its_events_in_order(tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = build_config(config_cls=TrainConfig, **dict(FAST, log_interval=1, checkpoint_steps=4), output=str(run))
    train_until_killed(monkeypatch, cfg, 7)  # events written up to step 7 (logged after each step), checkpoint at 4
    train(cfg, resume=True)
    steps = [e.step for e in read_events(run).Scalars("step/loss")]
    assert steps == list(range(1, 13))  # steps 5..7 of the killed run were dropped, none twice, none out of order


def test_no_tensorboard_package_is_one_warning_and_no_events(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it raises ImportError
    events = EventLog(tmp_path, enabled=True, purge_step=None, options=TrainConfig())
    events.step(1, 0.5, 0.1)
    events.epoch({"epoch": 1, "global_step": 1, "train_loss": 0.5})
    events.close()
    assert "the tensorboard package is not installed: no event files" in capsys.readouterr().err
    assert not (tmp_path / EVENTS_DIR).exists()
