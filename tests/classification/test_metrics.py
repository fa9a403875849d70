"""Per-class and balanced accuracy and the confusion matrix, against hand counts, in one process and summed over two."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch import nn

from botnet.classification.evaluate import evaluate
from botnet.classification.metrics import balanced_accuracy, per_class_accuracy, plot_confusion
from botnet.data.folder import BadSample
from botnet.engine.data import eval_loader
from botnet.engine.distributed import DistInfo

K = 4
PAIRS = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (1, 2), (1, 1), (2, 2), (0, 3), (0, 0)]  # (true, predicted)


def _hand_confusion(pairs, k):
    m = [[0] * k for _ in range(k)]
    for t, p in pairs:
        m[t][p] += 1
    return m


def test_per_class_and_balanced_accuracy_by_hand():
    m = _hand_confusion(PAIRS, K)
    # class 0: 3 of 5 right; class 1: 2 of 4; class 2: 1 of 1; class 3: no images.
    assert per_class_accuracy(m) == [60.0, 50.0, 100.0, None]
    assert balanced_accuracy(m) == pytest.approx((60.0 + 50.0 + 100.0) / 3)
    for c in range(3):  # the same from the pairs by explicit loops
        mine = [p for t, p in PAIRS if t == c]
        assert per_class_accuracy(m)[c] == pytest.approx(100.0 * sum(p == c for p in mine) / len(mine))
    with pytest.raises(ValueError, match="at least one image"):
        balanced_accuracy([[0, 0], [0, 0]])


class _Images(torch.utils.data.Dataset):
    """Random 3x4x4 images with labels; every 7th sample is unreadable."""

    def __init__(self, n: int, k: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 4, 4, generator=g)
        self.y = torch.randint(0, k, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return BadSample(f"{i}.png", "broken") if i % 7 == 6 else (self.x[i], int(self.y[i]))


def _model(k: int) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, k))


def _hand_count(ds: _Images, model: nn.Module, k: int) -> list[list[int]]:
    m = [[0] * k for _ in range(k)]
    with torch.no_grad():
        for i in range(len(ds)):
            sample = ds[i]
            if isinstance(sample, BadSample):
                continue
            x, y = sample
            m[y][int(model(x[None]).argmax())] += 1
    return m


def test_evaluate_counts_the_confusion_matrix():
    ds, model = _Images(45, K), _model(K)
    m = evaluate(model, eval_loader(ds, 8, 0, DistInfo()), DistInfo(), num_classes=K, log_interval=1000)
    hand = _hand_count(ds, model, K)
    assert m["confusion"] == hand
    assert m["images"] == sum(map(sum, hand)) == 45 - 6 and m["bad_images"] == 6
    assert m["top1"] == pytest.approx(100.0 * sum(hand[c][c] for c in range(K)) / m["images"])
    assert m["per_class_accuracy"] == per_class_accuracy(hand)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy(hand))


def _rank_main(rank: int, store: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        info = DistInfo(rank=rank, world_size=2)
        ds = _Images(45, K)
        m = evaluate(_model(K), eval_loader(ds, 4, 0, info), info, num_classes=K, log_interval=1000)
        with open(f"{out}.{rank}", "w") as f:
            json.dump(m, f)
    finally:
        torch.distributed.destroy_process_group()


def test_the_confusion_matrix_is_summed_over_processes(tmp_path):
    out = str(tmp_path / "m")
    mp.spawn(_rank_main, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    hand = _hand_count(_Images(45, K), _model(K), K)
    for rank in (0, 1):  # each process sees half the images and gets the sum of both
        with open(f"{out}.{rank}") as f:
            m = json.load(f)
        assert m["confusion"] == hand and m["images"] == 39 and m["bad_images"] == 6
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy(hand))


@pytest.mark.parametrize(("k", "pixels"), [(3, 520), (40, 2000)])  # (4 + 0.4 k) inches, at most 24, x 100
def test_confusion_png_size(tmp_path, k, pixels):
    m = _hand_confusion([(i % k, (i * 3) % k) for i in range(5 * k)], k)
    path = tmp_path / "c.png"
    names = [f"class{i}" for i in range(k)]
    plot_confusion(m, names, path)
    with Image.open(path) as img:
        assert img.size == (pixels, pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # written through a temporary file, renamed
    with pytest.raises(ValueError, match=f"must be {k}x{k}"):
        plot_confusion(m[:2], names, path)
