"""Output files appear complete or not at all, with the permissions of a plainly created file."""

from __future__ import annotations

import os

import pytest

from botnet.files import atomic_output


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "result.json"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "first"
    assert os.listdir(target.parent) == ["result.json"]  # no temporary file left


def test_atomic_output_has_the_default_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.png", suffix=".png") as tmp:
            assert tmp.suffix == ".png"
            tmp.write_bytes(b"x")
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644
