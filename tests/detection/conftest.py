"""A tiny COCO-format dataset written once per test module: 16 train / 6 val images of 64 px."""

from __future__ import annotations

from pathlib import Path

import pytest

from botnet.data.coco_shapes import write_coco_shapes


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    return write_coco_shapes(tmp_path_factory.mktemp("coco") / "data", num_train=16, num_val=6, size=64, seed=0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTNET_CACHE", str(tmp_path / "cache"))  # the built-in dataset never lands in ~/.cache
