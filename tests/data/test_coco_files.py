"""COCO loading: only regular files read, duplicates named, empty categories explained."""

from __future__ import annotations

import os
import threading
import warnings

import pytest
from test_coco import _coco_dict, _write

from botnet.data.coco import CocoDetection
from botnet.data.folder import BadSample, DataError


def test_one_image_file_under_two_ids_is_refused(tmp_path):
    data = _coco_dict()
    data["images"].append({"id": 9, "file_name": "a.png", "width": 40, "height": 30})
    root, ann_file = _write(tmp_path, data)
    with pytest.raises(DataError, match=r"image ids 1 and 9 are the same image file .*a\.png: its annotations would"):
        CocoDetection(root, ann_file)


def test_the_same_file_through_a_link_is_refused_too(tmp_path):
    data = _coco_dict()
    data["images"].append({"id": 9, "file_name": "alias.png", "width": 40, "height": 30})
    root, ann_file = _write(tmp_path, data, skip=("alias.png",))
    os.symlink("a.png", root / "alias.png")
    with pytest.raises(DataError, match=r"image ids 1 and 9 are the same image file .*alias\.png"):
        CocoDetection(root, ann_file)


def test_duplicate_category_names_are_named_in_a_warning(tmp_path):
    data = _coco_dict()
    data["categories"].append({"id": 12, "name": "cat"})
    with pytest.warns(UserWarning, match=r"several categories the same name \('cat': ids 7, 12\)") as record:
        dataset = CocoDetection(*_write(tmp_path, data))
    assert len(record) == 1
    assert dataset.classes == ["dog", "cat", "bird", "cat"]  # ids 3, 7, 10, 12: still four separate classes


def test_distinct_names_give_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CocoDetection(*_write(tmp_path, _coco_dict()))


def test_empty_categories_are_explained_as_categories(tmp_path):
    data = _coco_dict()
    data["categories"], data["annotations"] = [], []
    root, ann_file = _write(tmp_path, data)
    with pytest.raises(DataError, match=r"has an empty 'categories' list: a detection dataset needs at least one") as e:
        CocoDetection(root, ann_file)
    assert "num_classes" not in str(e.value)


def test_special_files_are_never_opened(tmp_path):
    data = _coco_dict()
    root, ann_file = _write(tmp_path, data, skip=("sub/b.png",))
    (root / "sub").mkdir()
    os.mkfifo(root / "sub" / "b.png")  # an image that would block the reader
    fifo_json = tmp_path / "pipe.json"
    os.mkfifo(fifo_json)
    result: dict = {}

    def load():
        try:
            CocoDetection(root, fifo_json)
        except DataError as err:
            result["json"] = str(err)
        result["sample"] = CocoDetection(root, ann_file)[1]

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "a FIFO was opened and blocks"
    assert result["json"] == f"COCO annotation file {fifo_json} is a FIFO (named pipe), not a regular file"
    sample = result["sample"]
    assert isinstance(sample, BadSample)
    assert sample.path == str(root / "sub" / "b.png")
    assert "is a FIFO (named pipe), not a regular file" in sample.reason
    with pytest.raises(DataError, match="is a directory, not a regular file"):
        CocoDetection(root, tmp_path)
