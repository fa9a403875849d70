"""Image-folder dataset: every PIL mode to RGB, unreadable files as BadSample, bad-image budget, layout errors."""

from __future__ import annotations

import importlib.util
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from botnet.data import folder
from botnet.data.folder import (
    UNREADABLE_IMAGE_ERRORS,
    BadImageTracker,
    BadSample,
    DataError,
    ImageFolderDataset,
    collate_skip_bad,
    load_rgb,
    read_rgb,
)

W, H = 7, 5  # non-square on purpose


def _rgb_array(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(path: Path, img: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _palette_image(transparency: bool) -> Image.Image:
    img = Image.fromarray(_rgb_array()).quantize(colors=8)
    if transparency:
        img.info["transparency"] = bytes([0, 255, 128, 255, 255, 255, 255, 255])  # per-entry alpha, as bytes
    return img


def _gray16() -> np.ndarray:
    return np.linspace(0, 65535, H * W).astype(np.uint16).reshape(H, W)


MODE_FILES = {
    "RGB": lambda: (Image.fromarray(_rgb_array()), ".jpg"),
    "L": lambda: (Image.fromarray(_rgb_array()).convert("L"), ".png"),
    "LA": lambda: (Image.fromarray(_rgb_array()).convert("LA"), ".png"),
    "1": lambda: (Image.fromarray(_rgb_array()).convert("1"), ".png"),
    "P": lambda: (_palette_image(transparency=False), ".png"),
    "P+transparency": lambda: (_palette_image(transparency=True), ".png"),
    "RGBA": lambda: (Image.fromarray(_rgb_array()).convert("RGBA"), ".png"),
    "CMYK": lambda: (Image.fromarray(_rgb_array()).convert("CMYK"), ".jpg"),
    "I;16": lambda: (Image.fromarray(_gray16()), ".png"),
    "I": lambda: (Image.fromarray(_gray16().astype(np.int32)), ".tif"),
    "F": lambda: (Image.fromarray(np.full((H, W), 100.0, dtype=np.float32)), ".tif"),
}


@pytest.mark.parametrize("mode", list(MODE_FILES))
def test_every_mode_loads_as_rgb_of_the_same_size(tmp_path: Path, mode: str) -> None:
    img, ext = MODE_FILES[mode]()
    path = _save(tmp_path / f"img{ext}", img)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. PIL's "Palette images with Transparency ... converted to RGBA"
        out = load_rgb(path)
    assert out.mode == "RGB"
    assert out.size == (W, H)
    assert np.asarray(out).shape == (H, W, 3)


def test_sixteen_bit_samples_are_scaled_to_eight_bits(tmp_path: Path) -> None:
    samples = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    out = np.asarray(load_rgb(_save(tmp_path / "g16.png", Image.fromarray(samples))))
    assert out[0, :, 0].tolist() == [0, 100, 255]
    assert (out[..., 0] == out[..., 2]).all()


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG file whose header declares width x height pixels (decompression-bomb shape)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _truncated(path: Path, fmt: str) -> Path:
    buf = io.BytesIO()
    Image.fromarray(_rgb_array(h=64, w=64)).save(buf, format=fmt)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_FILES = {
    "zero_bytes": lambda d: _write(d / "empty.jpg", b""),
    "truncated_png": lambda d: _truncated(d / "cut.png", "PNG"),
    "truncated_jpeg": lambda d: _truncated(d / "cut.jpg", "JPEG"),
    "text_as_jpg": lambda d: _write(d / "x.jpg", b"not an image\n"),
    "bomb_header": lambda d: _png_header_only(d / "bomb.png", 100_000, 100_000),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_unreadable_file_raises_from_load_rgb(tmp_path: Path, kind: str) -> None:
    path = BAD_FILES[kind](tmp_path)
    with pytest.raises(UNREADABLE_IMAGE_ERRORS):
        load_rgb(path)


def _progressive_jpeg() -> tuple[Image.Image, str, dict]:
    return Image.fromarray(_rgb_array(3, 40, 56)), ".jpg", dict(progressive=True, quality=80)


TENSOR_FILES = {
    **{mode: lambda make=make: (*make(), {}) for mode, make in MODE_FILES.items()},
    "RGB 4:2:0 JPEG, odd size": lambda: (Image.fromarray(_rgb_array(1, 33, 47)), ".jpg", dict(quality=75)),
    "gray JPEG": lambda: (Image.fromarray(_rgb_array(2, 20, 30)).convert("L"), ".jpg", {}),
    "progressive JPEG": _progressive_jpeg,
}


JPEG_DECODED = {"RGB", "RGB 4:2:0 JPEG, odd size", "gray JPEG", "progressive JPEG"}  # CMYK JPEGs go through PIL


@pytest.mark.parametrize("torchcodec", [True, False], ids=["torchcodec", "pil-fallback"])
@pytest.mark.parametrize("kind", list(TENSOR_FILES))
def test_read_rgb_gives_the_pixels_of_load_rgb(tmp_path: Path, monkeypatch, kind: str, torchcodec: bool) -> None:
    """JPEGs through TorchCodec's decode_jpeg (or PIL where it cannot load), the rest through PIL: the pixels of
    load_rgb, bit for bit."""
    decoder, calls = folder._jpeg_decoder(), []
    if torchcodec and importlib.util.find_spec("torchcodec") is None:
        pytest.skip("TorchCodec has no wheel for this platform: PIL decodes")
    assert decoder is not None or not torchcodec  # installed, it loads with the locked torch

    def counted(*args, **kwargs):
        calls.append(1)
        return decoder(*args, **kwargs)

    monkeypatch.setattr(folder, "_jpeg_decoder", lambda: counted if torchcodec else None)
    img, ext, save_kw = TENSOR_FILES[kind]()
    path = _save(tmp_path / f"img{ext}", img, **save_kw)
    got = read_rgb(path)
    expected = torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1)  # (3, H, W)
    assert got.dtype == torch.uint8 and got.shape == expected.shape
    assert torch.equal(got, expected)
    assert len(calls) == (torchcodec and kind in JPEG_DECODED)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_unreadable_file_raises_from_read_rgb(tmp_path: Path, kind: str) -> None:
    path = BAD_FILES[kind](tmp_path)
    with pytest.raises(UNREADABLE_IMAGE_ERRORS):
        read_rgb(path)


def test_read_rgb_checks_max_pixels_before_decoding(tmp_path: Path) -> None:
    path = _save(tmp_path / "ok.jpg", Image.fromarray(_rgb_array()))
    with pytest.raises(Image.DecompressionBombError, match="max_pixels=34"):
        read_rgb(path, max_pixels=W * H - 1)
    assert read_rgb(path, max_pixels=W * H).shape == (3, H, W)


def test_read_rgb_leaves_truncated_jpegs_to_pil_when_allowed(tmp_path: Path, monkeypatch) -> None:
    """With PIL's LOAD_TRUNCATED_IMAGES on, a cut JPEG decodes as load_rgb decodes it, not as an error."""
    from PIL import ImageFile

    path = _truncated(tmp_path / "cut.jpg", "JPEG")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    assert torch.equal(read_rgb(path), torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1))


def test_pil_bomb_warning_range_is_an_error(tmp_path: Path) -> None:
    # 10_000 x 10_000 is between PIL's warning (89M) and error (179M) thresholds: a warning in PIL, an error here
    path = _png_header_only(tmp_path / "big.png", 10_000, 10_000)
    with pytest.raises(Image.DecompressionBombError):
        load_rgb(path, max_pixels=None)


def test_max_pixels_is_checked_before_decoding(tmp_path: Path) -> None:
    path = _save(tmp_path / "ok.png", Image.fromarray(_rgb_array()))
    with pytest.raises(Image.DecompressionBombError, match="max_pixels=34"):
        load_rgb(path, max_pixels=W * H - 1)
    assert load_rgb(path, max_pixels=W * H).size == (W, H)


def _make_split(root: Path, split: str, classes: dict[str, int], seed: int = 0) -> None:
    for c, (name, count) in enumerate(classes.items()):
        for i in range(count):
            _save(root / split / name / f"{i}.png", Image.fromarray(_rgb_array(seed + 10 * c + i)))


@pytest.fixture(params=[False, True], ids=["pil", "tensors"])
def dataset_with_bad_files(tmp_path: Path, request) -> tuple[ImageFolderDataset, set[str]]:
    _make_split(tmp_path, "train", {"cat": 2, "dog": 2})
    _save(tmp_path / "train" / "dog" / "nested" / "deep.JPG", Image.fromarray(_rgb_array(5)))
    (tmp_path / "train" / "dog" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # hidden: ignored
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored: not an image extension")
    bad_dir = tmp_path / "train" / "cat"
    bad = {str(BAD_FILES[kind](bad_dir)) for kind in BAD_FILES}
    if request.param:
        return ImageFolderDataset(tmp_path, "train", transform=None, tensors=True), bad
    ds = ImageFolderDataset(tmp_path, "train", transform=lambda img: torch.from_numpy(np.array(img)).permute(2, 0, 1))
    return ds, bad


def test_dataset_gives_bad_samples_and_does_not_crash(dataset_with_bad_files) -> None:
    ds, bad_paths = dataset_with_bad_files
    assert ds.classes == ["cat", "dog"]
    assert ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 2 + len(bad_paths) + 3  # the hidden file and the .txt are not samples
    assert any(p.endswith("deep.JPG") for p, _ in ds.samples)
    assert ds.targets == [t for _, t in ds.samples]

    items = [ds[i] for i in range(len(ds))]
    got_bad = {item.path for item in items if isinstance(item, BadSample)}
    assert got_bad == bad_paths
    for item in items:
        if isinstance(item, BadSample):
            assert item.reason
        else:
            img, target = item
            assert img.shape == (3, H, W) and target in (0, 1)

    images, targets, bad = collate_skip_bad(items)
    assert images.shape == (len(ds) - len(bad_paths), 3, H, W)
    assert targets.tolist() == [t for item in items if not isinstance(item, BadSample) for t in [item[1]]]
    assert {b.path for b in bad} == bad_paths


def test_collate_of_only_bad_samples_is_empty() -> None:
    bad = [BadSample("a.jpg", "broken"), BadSample("b.jpg", "broken")]
    images, targets, dropped = collate_skip_bad(bad)
    assert images.shape == (0,) and targets.shape == (0,)
    assert dropped == bad


def test_tracker_raises_above_the_fraction_with_paths() -> None:
    tracker = BadImageTracker()
    bad = [BadSample(f"/data/train/cat/{i}.jpg", "OSError: image file is truncated") for i in range(7)]
    tracker.update(100, bad[:2])
    tracker.check(0.02)  # 2 of 100: at the limit, not above
    tracker.update(100, bad[2:])
    assert tracker.seen == 200 and tracker.num_bad == 7
    with pytest.raises(DataError) as err:
        tracker.check(0.02)
    msg = str(err.value)
    assert "7 of 200" in msg and "--max-bad-fraction" in msg
    assert all(f"{i}.jpg: OSError" in msg for i in range(5)) and "5.jpg" not in msg
    tracker.check(0.05)
    assert tracker.summary().startswith("skipped 7 of 200 images that could not be read (first: /data/train/cat/0.jpg")
    with pytest.raises(ValueError, match="n_seen"):
        tracker.update(1, bad)


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope", "train")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        ImageFolderDataset(tmp_path / "file", "train")

    root = tmp_path / "ds"
    _make_split(root, "training", {"cat": 1})
    with pytest.raises(DataError) as err:
        ImageFolderDataset(root, "train")
    assert "DIR/train/<class>/*.jpg" in str(err.value) and "DIR/val/<class>/*.jpg" in str(err.value)
    assert "training" in str(err.value)

    _save(root / "train" / "loose.jpg", Image.fromarray(_rgb_array()))
    with pytest.raises(DataError, match="no class sub-folders.*1 image files directly"):
        ImageFolderDataset(root, "train")


def test_empty_class_folders_are_all_named(tmp_path: Path) -> None:
    _make_split(tmp_path, "train", {"cat": 1})
    (tmp_path / "train" / "dog").mkdir()
    (tmp_path / "train" / "emu" / "sub").mkdir(parents=True)
    (tmp_path / "train" / "emu" / "readme.txt").write_text("x")
    with pytest.raises(DataError) as err:
        ImageFolderDataset(tmp_path, "train")
    msg = str(err.value)
    assert "2 class folder(s)" in msg and "contain no image files: dog, emu." in msg
    assert ".jpg" in msg and ".png" in msg and ".webp" in msg


def test_val_classes_must_match_train(tmp_path: Path) -> None:
    _make_split(tmp_path, "train", {"cat": 1, "dog": 1, "emu": 1})
    _make_split(tmp_path, "val", {"cat": 1, "dog": 1, "emu": 1})
    train = ImageFolderDataset(tmp_path, "train")
    val = ImageFolderDataset(tmp_path, "val", classes=train.classes)
    assert val.class_to_idx == train.class_to_idx

    _make_split(tmp_path, "val2", {"cat": 1, "fox": 1, "yak": 1})
    with pytest.raises(DataError) as err:
        ImageFolderDataset(tmp_path, "val2", classes=train.classes)
    msg = str(err.value)
    assert "missing 2: dog, emu" in msg and "extra 2: fox, yak" in msg


def test_val_targets_follow_the_given_class_order(tmp_path: Path) -> None:
    _make_split(tmp_path, "val", {"a": 1, "b": 1})
    val = ImageFolderDataset(tmp_path, "val", classes=["b", "a"])
    assert val.class_to_idx == {"b": 0, "a": 1}
    assert sorted((Path(p).parent.name, t) for p, t in val.samples) == [("a", 1), ("b", 0)]
