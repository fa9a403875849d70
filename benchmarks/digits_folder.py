"""Write scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes) as an ImageFolder for transfer
experiments: ``DIR/train/<digit>/*.png`` and ``DIR/val/<digit>/*.png`` (497 images, a fixed random 28 %), each
upsampled to 32x32 grey. The data ships inside scikit-learn: nothing is downloaded.

    uv run --with scikit-learn python benchmarks/digits_folder.py data/digits
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

VAL_IMAGES = 497


def main(root: Path) -> None:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    for rank, i in enumerate(order):
        split = "val" if rank < VAL_IMAGES else "train"
        out = root / split / str(digits.target[i])
        out.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)  # 0..16 ink levels -> 0..255
        Image.fromarray(pixels, "L").resize((32, 32), Image.BILINEAR).save(out / f"{i}.png")
    print(f"{len(order)} images: {len(order) - VAL_IMAGES} train, {VAL_IMAGES} val, in {root}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/digits"))
