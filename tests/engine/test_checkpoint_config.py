"""Checkpoint directories (atomic swap, fallback, safe loading) and the YAML / flag configuration."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil

import pytest
import torch

from botnet.classification import TrainConfig
from botnet.engine import build_config, load_yaml, save_yaml
from botnet.engine import checkpoint as ckpt
from botnet.engine.config import add_arguments, overrides_from_args


def _write(files: dict[str, bytes]):
    def write(tmp):
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    return write


def test_checkpoint_swap_is_atomic(tmp_path):
    target = tmp_path / "last"
    ckpt.write_checkpoint_dir(target, _write({ckpt.MODEL_FILE: b"one"}))

    def crash(tmp):
        (tmp / ckpt.MODEL_FILE).write_bytes(b"two, half written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.write_checkpoint_dir(target, crash)
    assert (target / ckpt.MODEL_FILE).read_bytes() == b"one"
    assert [p.name for p in tmp_path.iterdir()] == ["last"]  # no temporary directory left behind

    ckpt.write_checkpoint_dir(target, _write({ckpt.MODEL_FILE: b"two"}))
    assert (target / ckpt.MODEL_FILE).read_bytes() == b"two"
    ckpt.link_checkpoint(target, tmp_path / "best")
    assert (tmp_path / "best" / ckpt.MODEL_FILE).read_bytes() == b"two"


def test_resolve_falls_back_to_the_old_checkpoint_during_a_swap(tmp_path):
    # State after a kill between the two renames: only last.old is complete.
    old = tmp_path / "last.old"
    old.mkdir()
    (old / ckpt.MODEL_FILE).write_bytes(b"x")
    assert ckpt.resolve_checkpoint(tmp_path) == old
    assert ckpt.resolve_checkpoint(tmp_path / "last") == old
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.resolve_checkpoint(tmp_path / "nowhere")


def test_previous_checkpoint_is_kept_and_read_when_last_is_missing(tmp_path):
    target = tmp_path / "last"
    for data in (b"one", b"two", b"three"):
        ckpt.write_checkpoint_dir(target, _write({ckpt.MODEL_FILE: data}), keep_previous=True)
    assert (target / ckpt.MODEL_FILE).read_bytes() == b"three"
    assert (tmp_path / "last.prev" / ckpt.MODEL_FILE).read_bytes() == b"two"  # "one" is gone: one previous is kept
    # a kill between the two renames of the next save leaves only last.prev
    os.replace(target, tmp_path / "last.prev.tmp")
    shutil.rmtree(tmp_path / "last.prev")
    os.replace(tmp_path / "last.prev.tmp", tmp_path / "last.prev")
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / "last.prev"


def test_manifest_finds_damage_and_names_the_file(tmp_path):
    target = tmp_path / "last"
    ckpt.write_checkpoint_dir(target, _write({ckpt.MODEL_FILE: b"weights" * 10, ckpt.STATE_FILE: b"state" * 10}))
    manifest = json.loads((target / ckpt.MANIFEST_FILE).read_text())["files"]
    assert set(manifest) == {ckpt.MODEL_FILE, ckpt.STATE_FILE}
    assert ckpt.resolve_checkpoint(target) == target
    (target / ckpt.STATE_FILE).write_bytes(b"state" * 5)
    with pytest.raises(ckpt.CheckpointError, match=r"training_state\.pt is truncated or overwritten: 25 bytes, 50"):
        ckpt.resolve_checkpoint(target)
    (target / ckpt.STATE_FILE).write_bytes(b"STATE" * 10)  # same size, other bytes
    with pytest.raises(ckpt.CheckpointError, match=r"training_state\.pt is corrupted: its SHA-256 differs"):
        ckpt.resolve_checkpoint(target)
    assert ckpt.resolve_checkpoint(target, verify=False) == target
    (target / ckpt.MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match=r"manifest\.json is unreadable"):
        ckpt.resolve_checkpoint(target)


def test_linking_best_never_edits_the_files_of_last(tmp_path):
    last = ckpt.write_checkpoint_dir(tmp_path / "last", _write({ckpt.MODEL_FILE: b"w"}))
    before = (last / ckpt.MANIFEST_FILE).read_bytes(), (last / ckpt.MANIFEST_FILE).stat().st_ino
    best = ckpt.link_checkpoint(last, tmp_path / "best")
    assert (last / ckpt.MANIFEST_FILE).read_bytes() == before[0]
    assert (last / ckpt.MANIFEST_FILE).stat().st_ino == before[1]
    assert ckpt.resolve_checkpoint(best) == best


def test_resume_removes_the_temporary_files_of_a_killed_writer(tmp_path):
    from botnet.engine.run_dir import prepare_output_dir

    run = tmp_path / "run"
    ckpt.write_checkpoint_dir(run / "last", _write({ckpt.MODEL_FILE: b"w"}))
    (run / ".last.abc123.tmp").mkdir()
    (run / ".last.abc123.tmp" / ckpt.MODEL_FILE).write_bytes(b"half")
    (run / ".metrics.jsonl.x1y2.tmp").write_text("{")
    (run / ".curves.png.x1y2.tmp.png").write_bytes(b"")
    (run / ".keep.me").write_text("not ours")
    prepare_output_dir(run, resume=True, overwrite=False)
    assert sorted(p.name for p in run.iterdir()) == [".keep.me", "last"]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_training_state_that_would_run_code_is_refused(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    d = tmp_path / "last"
    d.mkdir()
    with open(d / ckpt.STATE_FILE, "wb") as fh:
        pickle.dump({"counters": _Evil()}, fh, protocol=2)
    with pytest.raises(ckpt.CheckpointError, match=r"cannot read .*training_state\.pt"):
        ckpt.load_training_state(d)
    assert not _Evil.marker.exists()
    (d / ckpt.STATE_FILE).write_bytes(b"truncated")
    with pytest.raises(ckpt.CheckpointError, match="training_state.pt"):
        ckpt.load_training_state(d)


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    torch.save(ckpt.rng_state(), tmp_path / "s.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    ckpt.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]


def test_yaml_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.05\nepochs: 3\nscale: [0.3, 1.0]\nmodel_args: {drop_rate: 0.1}\nrandaugment: rand-m9-n2\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    args = parser.parse_args(["--epochs", "7", "--no-nesterov", "--ratio", "0.5", "2", "--clip-grad", "none"])
    cfg = build_config(f, config_cls=TrainConfig, **overrides_from_args(args, TrainConfig))
    assert (cfg.lr, cfg.epochs, cfg.nesterov, cfg.ratio, cfg.clip_grad) == (0.05, 7, False, (0.5, 2.0), None)
    assert cfg.scale == (0.3, 1.0) and cfg.model_args == {"drop_rate": 0.1}
    assert cfg.batch_size == TrainConfig().batch_size
    save_yaml(cfg, tmp_path / "saved.yaml")
    assert build_config(tmp_path / "saved.yaml", config_cls=TrainConfig) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lrr: 0.1\n", "unknown option.*lrr.*valid: model"),
        ("lr: fast\n", "invalid option --lr: expected a number"),
        ("epochs: 2.5\n", "invalid option --epochs: expected an integer"),
        ("epochs: 0\n", "--epochs must be >= 1, got 0"),
        ("optimizer: adam\n", "optimizer: 'adam' is not one of sgd, adamw"),
        ("scale: [0.9, 0.1]\n", "--scale must be given as low high with low <= high"),
        ("lr: 0.1\nepochs: 2\nlr: 0.2\n", r"option lr is given twice \(lines 1 and 3\)"),
        ("momentum: .nan\n", r"--momentum must be a finite number in \[0, 1\), got nan"),
        ("- a list\n", "must hold a mapping"),
        ("lr: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ValueError, match=message):
        build_config(f, config_cls=TrainConfig)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml", TrainConfig)


def test_a_run_directory_means_best_where_a_model_is_read_and_last_for_resume(tmp_path):
    from botnet.engine.checkpoint import resolve_checkpoint

    run = tmp_path / "run"
    for name in ("last", "best"):
        (run / name).mkdir(parents=True)
        (run / name / "model.safetensors").write_bytes(b"x")
    assert resolve_checkpoint(run, verify=False) == run / "best"
    assert resolve_checkpoint(run, verify=False, run_checkpoint="last") == run / "last"
    (run / "best").rename(run / "best.old")  # a swap of best/ interrupted by a kill: its copy aside is still best
    assert resolve_checkpoint(run, verify=False) == run / "best.old"
    (run / "best.old" / "model.safetensors").unlink()
    assert resolve_checkpoint(run, verify=False) == run / "last"  # no best/ yet: the last one
