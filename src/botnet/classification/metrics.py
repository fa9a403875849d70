"""What small and imbalanced datasets need beside top-1: per-class accuracy, balanced accuracy, a confusion matrix.

The confusion matrix counts images by true class (rows) and predicted class (columns). A class's accuracy is its
recall, the share of its images predicted as it; balanced accuracy is the mean of the per-class accuracies over the
classes that have images (scikit-learn's ``balanced_accuracy_score``), so every class weighs the same whatever its
size. All in percent, as top-1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..files import atomic_output

CONFUSION_FILE = "confusion.png"

Matrix = Sequence[Sequence[float]]


def per_class_accuracy(confusion: Matrix) -> list[float | None]:
    """Accuracy (recall, %) of each true class; ``None`` for a class without images."""
    out: list[float | None] = []
    for c, row in enumerate(confusion):
        total = sum(row)
        out.append(100.0 * row[c] / total if total else None)
    return out


def balanced_accuracy(confusion: Matrix) -> float:
    """Mean per-class accuracy (%) over the classes that have images."""
    present = [acc for acc in per_class_accuracy(confusion) if acc is not None]
    if not present:
        raise ValueError("balanced accuracy needs at least one image; the confusion matrix is empty")
    return sum(present) / len(present)


def figure_inches(num_classes: int) -> float:
    """Side of the square confusion-matrix figure: 4 inches plus 0.4 per class, at most 24 (100 pixels an inch)."""
    return min(4.0 + 0.4 * num_classes, 24.0)


def plot_confusion(confusion: Matrix, classes: Sequence[str], path: str | Path, *, title: str = "") -> None:
    """Write the confusion matrix as a PNG, atomically: cells coloured by the share of their row (true class), with
    counts written in them for up to 30 classes; a square image of :func:`figure_inches` x 100 pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    if len(confusion) != k or any(len(row) != k for row in confusion):
        raise ValueError(f"the confusion matrix must be {k}x{k} for {k} classes")
    shares = [[v / max(sum(row), 1) for v in row] for row in confusion]
    side = figure_inches(k)
    fig, ax = plt.subplots(figsize=(side, side), dpi=100, constrained_layout=True)
    try:
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = list(range(k))
        small = 8 if k > 15 else 10
        ax.set_xticks(ticks, [str(c) for c in classes], rotation=90, fontsize=small)
        ax.set_yticks(ticks, [str(c) for c in classes], fontsize=small)
        ax.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
        if k <= 30:
            for t in range(k):
                for p in range(k):
                    color = "white" if shares[t][p] > 0.5 else "black"
                    ax.text(p, t, f"{int(confusion[t][p])}", ha="center", va="center", color=color, fontsize=small)
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
