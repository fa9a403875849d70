"""Data files are read only when they are regular files; link loops and files reached twice in an ImageFolder."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from botnet.data.folder import BadImageTracker, BadSample, ImageFolderDataset, collate_skip_bad, load_rgb, read_images
from botnet.data.scan import NotRegularFile, open_regular, read_regular_bytes

DEADLINE_S = 30


def _png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 6, 3), value, dtype=np.uint8)).save(path)
    return path


def _folder(root: Path) -> Path:
    """train/a/{0,1,2}.png and train/b/{0,1,2}.png; the pixel value tells class and index apart."""
    for c, name in enumerate("ab"):
        for i in range(3):
            _png(root / "train" / name / f"{i}.png", 10 * c + i)
    return root


def _within_deadline(fn):
    """Run ``fn`` in a daemon thread and fail (instead of hanging the test run) when it passes the deadline."""
    result: dict = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - re-raised below in the test's thread
            result["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"still running after {DEADLINE_S} s: a special file was opened and blocks"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _rel(ds: ImageFolderDataset) -> list[tuple[str, int]]:
    return [(str(Path(p).relative_to(ds.root / ds.split)), t) for p, t in ds.samples]


def test_symlink_loop_gives_the_exact_images_and_labels(tmp_path):
    root = _folder(tmp_path / "data")
    os.symlink("..", root / "train" / "a" / "loop")  # train/a/loop -> train: would pull in a/ and b/ again, forever
    os.symlink(".", root / "train" / "b" / "self")
    os.symlink("../b", root / "train" / "a" / "to_b")  # into another class's folder: not followed
    ds = _within_deadline(lambda: ImageFolderDataset(root, "train"))
    expected = [(f"{name}/{i}.png", c) for c, name in enumerate("ab") for i in range(3)]
    assert _rel(ds) == expected
    assert len(ds) == 6
    for index, (_, target) in enumerate(expected):
        image, label = ds[index]
        assert label == target
        assert np.asarray(image)[0, 0, 0] == 10 * target + index % 3  # the file of that class, not a look-alike


def test_a_file_reached_twice_counts_once_under_its_first_class(tmp_path):
    root = _folder(tmp_path / "data")
    train = root / "train"
    os.symlink("../b/0.png", train / "a" / "z_link.png")  # b's file reached from a first: kept once, under a
    os.link(train / "a" / "1.png", train / "b" / "hard.png")  # a hard link of a's file inside b: a's
    (train / "b" / "nested").mkdir()
    os.symlink("../../a/2.png", train / "b" / "nested" / "again.png")
    outside = _png(tmp_path / "elsewhere" / "x.png", 99)
    os.symlink(outside, train / "b" / "ext.png")  # a link to a file outside the dataset is followed once
    ds = ImageFolderDataset(root, "train")
    assert _rel(ds) == [
        ("a/0.png", 0),
        ("a/1.png", 0),
        ("a/2.png", 0),
        ("a/z_link.png", 0),
        ("b/1.png", 1),
        ("b/2.png", 1),
        ("b/ext.png", 1),
    ]


def test_the_order_is_torchvisions(tmp_path):
    from torchvision.datasets.folder import make_dataset

    root = tmp_path / "data"
    for rel in ("a/x.png", "a/b c/1.png", "a/b/2.png", "a/b/c/3.png", "a/0.png", "b/1.png", "b/sub/0.png"):
        _png(root / "train" / rel, 1)
    ds = ImageFolderDataset(root, "train")
    reference = make_dataset(str(root / "train"), ds.class_to_idx, extensions=(".png",))
    assert ds.samples == reference


def test_fifo_socket_and_device_are_skipped_and_counted_without_opening(tmp_path):
    root = _folder(tmp_path / "data")
    os.mkfifo(root / "train" / "a" / "pipe.png")  # opening it for reading would block for good
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "train" / "b" / "sock.png"))
    os.symlink(os.devnull, root / "train" / "b" / "null.png")
    try:

        def load_everything():
            ds = ImageFolderDataset(root, "train", transform=np.array)
            return ds, [ds[i] for i in range(len(ds))]

        ds, items = _within_deadline(load_everything)
    finally:
        server.close()
    bad = {Path(item.path).name: item.reason for item in items if isinstance(item, BadSample)}
    assert set(bad) == {"pipe.png", "sock.png", "null.png"}
    assert "FIFO (named pipe), not a regular file" in bad["pipe.png"]
    assert "socket, not a regular file" in bad["sock.png"]
    assert "character device, not a regular file" in bad["null.png"]
    assert len(ds) == 9
    tracker = BadImageTracker()
    _, targets, dropped = collate_skip_bad(items)
    tracker.update(len(items), dropped)
    assert (tracker.seen, tracker.num_bad, len(targets)) == (9, 3, 6)


def test_open_regular_refuses_special_files_before_opening(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="is a FIFO"):
        _within_deadline(lambda: open_regular(fifo))
    with pytest.raises(NotRegularFile, match="is a directory"):
        open_regular(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing.png")
    with pytest.raises(OSError, match="is a FIFO"):
        _within_deadline(lambda: load_rgb(fifo))
    with pytest.raises(ValueError, match=r"pipe\.png is a FIFO \(named pipe\), not a regular file; give image files"):
        _within_deadline(lambda: read_images([fifo]))
    with pytest.raises(ValueError, match="is a directory, not a regular file"):
        read_images([tmp_path])
    small = tmp_path / "small.json"
    small.write_text("{}")
    assert read_regular_bytes(small, 2) == b"{}"
    with pytest.raises(ValueError, match="is 2 bytes, more than the 1 allowed"):
        read_regular_bytes(small, 1)


def _gray_file(tmp_path: Path, values: np.ndarray, name: str) -> Path:
    path = tmp_path / name
    Image.fromarray(values).save(path)
    return path


def test_mode_i_holding_eight_bit_values_is_not_darkened(tmp_path):
    values = np.array([[0, 1, 17, 128, 254, 255]], dtype=np.int32)
    path = _gray_file(tmp_path, values, "i32.tif")
    with Image.open(path) as img:
        assert img.mode == "I"
    out = np.asarray(load_rgb(path))
    assert out[..., 0].tolist() == values.tolist()  # the values themselves, not value / 257
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_mode_i_sixteen_bit_and_wider_ranges(tmp_path):
    sixteen = np.array([[0, 300, 257 * 200, 65535]], dtype=np.int32)  # needs 16 bits: scaled by 65535 -> 255
    out = np.asarray(load_rgb(_gray_file(tmp_path, sixteen, "i16.tif")))[..., 0]
    assert out.tolist() == [[0, 1, 200, 255]]
    wide = np.array([[-1000, 0, 99000, 199000]], dtype=np.int32)  # beyond 16 bits: its own min..max -> 0..255
    out = np.asarray(load_rgb(_gray_file(tmp_path, wide, "wide.tif")))[..., 0]
    reference = [round((v + 1000) * 255 / 200000) for v in wide[0].tolist()]
    assert out.tolist() == [reference]
    flat = np.full((2, 3), -5, dtype=np.int32)
    assert np.asarray(load_rgb(_gray_file(tmp_path, flat, "flat.tif"))).max() == 0
