"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from train_helpers import write_image_folder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_image_folder(tmp_path / "data")


class CliResult(NamedTuple):
    """What a ``botnet`` command gave: its exit status and output (the names of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """``botnet ...`` in this process (the interpreter's start-up is what the subprocess tests add):
    ``cli("train", "--data", d)`` gives ``(status, stdout, stderr)``."""
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)

    def run(*args) -> CliResult:
        capsys.readouterr()
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(status, out, err)

    return run
