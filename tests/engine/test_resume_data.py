"""``--resume`` and the run's data: resumed from another working directory, after the data moved, and refused (naming
what changed) when the files are not the ones the run started on."""

from __future__ import annotations

import json
import shutil

from botnet.engine.data_identity import data_identity, describe_changes
from train_helpers import write_image_folder

SMALL = ["--epochs", "1", "--image-size", "32", "--batch-size", "4", "--workers", "0"]


def test_resume_follows_the_data_and_refuses_other_files(tmp_path, monkeypatch, cli):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    write_image_folder(project / "base")
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    assert cli("train", "--data", "base", "--output", "runs/base", "--tensorboard", "false", *SMALL)[0] == 0
    run = project / "runs" / "base"
    assert not (run / "tensorboard").exists()
    assert json.loads((run / "data.json").read_text())["path"] == str(project / "base")

    monkeypatch.chdir(elsewhere)  # the relative path of the command line means nothing here: the run kept its place
    status, _, err = cli("train", "--resume", run)
    assert status == 0, err
    status, _, err = cli("train", "--resume", run, "--data", project / "base")  # its own place, spelt another way
    assert status == 0, err

    (project / "base").rename(project / "moved")
    status, _, err = cli("train", "--resume", run)
    assert status == 2 and "is not there" in err and "pass --data with its new place" in err
    status, _, err = cli("train", "--resume", run, "--data", project / "moved")
    assert status == 0 and f"moved from {project / 'base'} to {project / 'moved'} (the same 24 files)" in err
    assert f"data: {project / 'moved'}" in (run / "config.yaml").read_text()

    other = write_image_folder(tmp_path / "other", per_class=5)
    status, _, err = cli("train", "--resume", run, "--data", other)
    assert status == 2 and "does not hold the run's data" in err and "4 file(s) removed" in err

    (project / "moved" / "train" / "cat" / "0.png").unlink()  # changed in place: caught without any --data
    shutil.copy(project / "moved" / "val" / "dog" / "1.png", project / "moved" / "train" / "dog" / "9.png")
    status, _, err = cli("train", "--resume", run)
    assert status == 2 and "(24 files then, 24 now): 1 file(s) removed (train/cat/0.png); 1 file(s) added" in err
    assert f"botnet train --data {project / 'moved'} --pretrained {run}" in err

    status, _, err = cli("train", "--resume", run, "--lr", "0.5")
    may_change = err.split("only")[1].split(".")[0]
    assert status == 2 and may_change.startswith(" --workers, --log-interval") and "--output" not in may_change


def test_the_listing_names_what_changed(tmp_path):
    root = write_image_folder(tmp_path / "d", per_class=3, splits=("train",))
    (root / "annotations.json").write_text('{"a": 1}')
    (root / ".hidden.png").write_bytes(b"x")
    (root / "notes.txt").write_text("not data")
    before = data_identity(root)
    assert before["files"] == 7 and before["listing"]["annotations.json"].startswith("sha256:")
    (root / "annotations.json").write_text('{"a": 2}')  # same size, other contents
    for i in range(7):
        (root / "train" / "cat" / f"new{i}.png").write_bytes(b"png")
    after = data_identity(root)
    assert after["fingerprint"] != before["fingerprint"]
    text = describe_changes(before, after)
    assert text.startswith("7 file(s) added (train/cat/new0.png, ") and text.count("new") == 5
    assert "and 2 more); 1 file(s) changed (annotations.json)" in text
