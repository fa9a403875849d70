"""Small data for training tests: tiny ImageFolder trees written by the test, and fast shapes options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# A few optimizer steps on the built-in dataset, in the main process.
FAST = dict(shapes_train=96, shapes_val=40, batch_size=16, epochs=2, workers=0, image_size=32, log_interval=1000)


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 6, splits=("train", "val")) -> Path:
    """``root/<split>/<class>/i.png`` with images of several sizes and modes (RGB, L, RGBA, P)."""
    rng = np.random.default_rng(0)
    modes = ("RGB", "L", "RGBA", "P")
    for split in splits:
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                arr[..., c % 3] = 255  # a class-dependent colour
                img = Image.fromarray(arr).convert(modes[i % len(modes)])
                img.save(d / f"{i}.png")
    return root


def train_until_killed(monkeypatch, cfg, steps: int, *, resume: bool = False) -> None:
    """Run ``botnet.classification.train(cfg)`` and stop it with a KeyboardInterrupt right after its ``steps``-th
    optimizer step, as a kill between two steps would (the run keeps only what it had checkpointed)."""
    import pytest

    from botnet.classification import train
    from botnet.engine.loop import Trainer

    done, original = {"n": 0}, Trainer._optimizer_step

    def dying_step(self):
        original(self)
        done["n"] += 1
        if done["n"] == steps:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_optimizer_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, resume=resume)
    monkeypatch.setattr(Trainer, "_optimizer_step", original)
