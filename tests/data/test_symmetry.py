"""The mirror correlation that decides horizontal flips (botnet.data.symmetry), against constructed classes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from botnet.data.symmetry import measure_mirror_correlation, mirror_correlation, small_grey

SIDE = 16


def noisy(pattern: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.5) -> list[np.ndarray]:
    return [pattern + rng.normal(0, noise, pattern.shape) for _ in range(n)]


def bar(column: int | None = None, row: int | None = None) -> np.ndarray:
    img = np.zeros((SIDE, SIDE))
    if column is not None:
        img[:, column] = 1.0
    if row is not None:
        img[row, :] = 1.0
    return img


def test_classes_that_look_alike_mirrored_measure_one():
    rng = np.random.default_rng(0)
    classes = [bar(row=3), bar(row=12), bar(column=7) + bar(column=8)]  # each its own mirror image
    assert mirror_correlation([noisy(p, 40, rng) for p in classes]) == pytest.approx(1.0, abs=0.15)


def test_classes_that_a_mirror_swaps_measure_negative():
    # "left bar" and "right bar": the mirror of one class is the other, as a mirrored "b" is a "d".
    rng = np.random.default_rng(1)
    classes = [bar(column=2), bar(column=13)]
    assert mirror_correlation([noisy(p, 40, rng) for p in classes]) < -0.8


def test_asymmetric_classes_measure_low():
    rng = np.random.default_rng(2)
    classes = [bar(column=1), bar(column=4) + bar(row=3), bar(column=6)]  # their mirrors match no class
    value = mirror_correlation([noisy(p, 40, rng) for p in classes])
    # The explicit sum: the per-class signal dotted with its mirror, over its power (noise-free patterns).
    mean = np.mean(classes, axis=0)
    d = [p - mean for p in classes]
    expected = sum((x * x[:, ::-1]).sum() for x in d) / sum((x * x).sum() for x in d)
    assert value == pytest.approx(expected, abs=0.15) and value < 0.6


def test_sampling_noise_is_not_counted_as_asymmetry():
    # Symmetric classes under heavy per-image noise: a single mean per class would look asymmetric (its noise is not
    # symmetric); the split-half products leave it near 1.
    rng = np.random.default_rng(3)
    classes = [bar(row=3), bar(row=12)]
    assert mirror_correlation([noisy(p, 40, rng, noise=1.0) for p in classes]) > 0.7


def test_no_class_signal_is_none():
    rng = np.random.default_rng(4)
    same = np.zeros((SIDE, SIDE))
    assert mirror_correlation([noisy(same, 40, rng) for _ in range(4)]) is None  # classes differ in nothing
    assert mirror_correlation([noisy(bar(row=2), 40, rng)]) is None  # one class
    assert mirror_correlation([[bar(row=2)], [bar(row=9)]]) is None  # one image per class: no halves


def test_measured_from_files(tmp_path):
    samples = []
    rng = np.random.default_rng(5)
    for target, pattern in enumerate((bar(column=2), bar(column=13))):
        for i in range(12):
            img = np.clip(pattern + rng.normal(0, 0.1, pattern.shape), 0, 1)
            path = tmp_path / f"{target}_{i}.png"
            Image.fromarray((img * 255).astype(np.uint8)).resize((64, 64), Image.Resampling.NEAREST).save(path)
            samples.append((str(path), target))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    samples.append((str(tmp_path / "bad.png"), 0))
    value, decoded = measure_mirror_correlation(samples, 2, per_class=13)
    assert decoded == 24 and value < -0.8  # the unreadable file is skipped
    assert small_grey(samples[0][0]).shape == (SIDE, SIDE)
