"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_helpers import write_image_folder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_image_folder(tmp_path / "data")
