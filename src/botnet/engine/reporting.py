"""What a run tells its user: a progress bar on a terminal, one line per interval otherwise, and the metrics files.

``metrics.jsonl`` holds one JSON object per epoch; ``curves.png`` draws loss and accuracy from it (matplotlib).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import atomic_output
from .layout import checkpoint_owner
from .outputs import check_output

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def log(msg: str, *, enabled: bool = True) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Per-epoch progress: tqdm (rate, ETA) when stderr is a terminal, else a plain line every ``interval`` steps."""

    def __init__(self, total: int, *, desc: str, interval: int, enabled: bool, start: int = 0) -> None:
        self.total, self.desc, self.interval, self.enabled = total, desc, interval, enabled
        self.count, self.start_count = start, start
        self.t0 = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)

    def update(self, **values: Any) -> None:
        self.count += 1
        if not self.enabled:
            return
        text = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif self.count % self.interval == 0 or self.count == self.total:
            done = self.count - self.start_count
            rate = done / max(time.perf_counter() - self.t0, 1e-9)
            eta = (self.total - self.count) / rate if rate > 0 else math.inf
            eta_s = _fmt_time(eta) if math.isfinite(eta) else "?"
            log(f"{self.desc} {self.count}/{self.total} {text} {rate:.2f} it/s eta {eta_s}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a kill: the rows before it are good
    return rows


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically with ``rows``."""
    atomic_write(Path(run_dir) / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, flushed, then renamed over it."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def result_path(output: str | Path | None, ckpt_dir: Path) -> Path:
    """Where an evaluation result of the checkpoint ``ckpt_dir`` goes: ``output``, else ``eval.json`` in the run that
    owns the checkpoint (beside a checkpoint that belongs to no run); checked by :func:`check_output`, so an
    evaluation never runs only to find that it cannot write its result."""
    if output:
        return check_output(output, option="--output")
    owner = checkpoint_owner(ckpt_dir)
    return check_output((owner if owner is not None else Path(ckpt_dir).parent) / "eval.json", option="--output")


def write_result(result: dict[str, Any], output: str | Path | None, ckpt_dir: Path) -> str:
    """Write an evaluation result as JSON, atomically, to :func:`result_path` (default ``<run dir>/eval.json``)."""
    out = result_path(output, ckpt_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(result, indent=2) + "\n")
    return str(out)


@dataclass(frozen=True)
class Curves:
    """What a task's validation panel of ``curves.png`` shows: ``(metric key, label)`` pairs, the factor from the
    stored value to the plotted one (AP is stored in 0..1 and plotted in %), and the axis and panel titles."""

    metrics: tuple[tuple[str, str], ...] = ()
    scale: float = 1.0
    ylabel: str = ""
    title: str = "validation"


def plot_curves(rows: list[dict[str, Any]], path: Path, curves: Curves = Curves()) -> None:
    """Loss (train, val) and the task's validation ``curves`` per epoch, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
    val = [(r["epoch"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    if val:
        ax_loss.plot(*zip(*val, strict=True), marker="o", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for key, label in curves.metrics:
        pts = [(r["epoch"], r[key] * curves.scale) for r in rows if r.get(key) is not None]
        if pts:
            ax_acc.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel=curves.ylabel, title=curves.title)
    ax_acc.grid(alpha=0.3)
    if ax_acc.lines:
        ax_acc.legend()
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
