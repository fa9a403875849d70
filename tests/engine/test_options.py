"""The shared training options: one class for what both training commands have, bounds beside each field, one
spelling per option (an old spelling in a config file is refused with the new one; a run's own config.yaml reads)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from botnet.classification.config import TrainConfig
from botnet.detection.config import DetectConfig
from botnet.engine.config import build_config
from botnet.engine.options import GROUPS, TrainingOptions

SRC = Path(__file__).resolve().parents[2] / "src" / "botnet"


def test_both_tasks_share_the_training_options_and_add_only_their_own():
    shared = {f.name for f in dataclasses.fields(TrainingOptions)}
    for cls in (TrainConfig, DetectConfig):
        assert issubclass(cls, TrainingOptions) and shared <= {f.name for f in dataclasses.fields(cls)}
    # a shared option keeps its bounds in a task that gives it its own default
    assert dataclasses.fields(DetectConfig)[0].metadata["group"] == "model"
    base = {f.name: f.metadata["bounds"] for f in dataclasses.fields(TrainingOptions)}
    detect = {f.name: f.metadata["bounds"] for f in dataclasses.fields(DetectConfig)}
    assert detect["clip_grad"] == base["clip_grad"] and detect["log_interval"] == base["log_interval"]
    assert DetectConfig().clip_grad == 10.0 and TrainConfig().clip_grad is None
    with pytest.raises(ValueError, match="--clip-grad must be > 0"):
        DetectConfig(clip_grad=0.0).validate()


def test_each_bound_is_declared_once_beside_its_field():
    tables = [p for p in SRC.rglob("*.py") if re.search(r"^\s*(TRAINING_)?BOUNDS\s*=", p.read_text(), re.M)]
    assert all(p.parent.name == "cli" for p in tables), tables  # the CLI's own commands (eval, predict) only
    for cls in (TrainConfig, DetectConfig):
        numeric = [f.name for f in dataclasses.fields(cls) if f.metadata["bounds"]]
        assert {"lr", "epochs", "image_size", "seed"} <= set(numeric)


def test_help_and_config_yaml_list_the_options_by_group():
    for cls in (TrainConfig, DetectConfig):
        groups = [f.metadata["group"] for f in cls.ordered_fields()]
        assert groups == sorted(groups, key=GROUPS.index) and set(groups) == set(GROUPS)
        assert list(cls().to_dict()) == [f.name for f in cls.ordered_fields()]


@pytest.mark.parametrize("cls", [TrainConfig, DetectConfig])
def test_an_old_spelling_in_a_config_file_names_the_new_one(tmp_path, cls):
    path = tmp_path / "opts.yaml"
    path.write_text("img_size: 96\nepochs: 3\n")
    with pytest.raises(ValueError, match=r"option img_size is spelled image_size \(the flag --image-size\)"):
        build_config(path, config_cls=cls)
    # a run directory's own config.yaml, written with the old spelling, still reads
    assert build_config(path, config_cls=cls, run_config=True).image_size == 96


def test_the_engine_and_cli_guess_no_task_from_a_name():
    """What a task is comes from its Task (engine/task.py), never from a metric or model name (the detection
    command's own module prints detection's table)."""
    names = re.compile(r"val_top1|val_bbox|maskrcnn|fasterrcnn|_tiny_fpn|segm")
    for path in [*(SRC / "engine").glob("*.py"), *(SRC / "cli").glob("*.py")]:
        if path.name != "detect_cmd.py":
            lines = path.read_text().splitlines()
            code = "\n".join(line for line in lines if not line.lstrip().startswith(("#", "``")))
            hits = [m.group() for m in names.finditer(re.sub(r'"""[\s\S]*?"""', "", code))]
            assert not hits, f"{path.name}: {hits}"
