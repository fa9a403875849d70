"""Where a query attends, drawn: the image with one heat map per attention head for chosen query positions.

``attention_figure(checkpoint, image, layer=..., queries=[(row, col)])`` runs a ``botnet train`` checkpoint on
one image, reads the probabilities of one MHSA2d layer (:func:`botnet.models.attention_maps`) and writes a PNG:
one row per query; the first column is the image the network saw with the query's cell outlined, then one panel
per head with the query's attention over the keys upsampled to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.folder import DEFAULT_MAX_PIXELS, read_images
from ..engine.validate import GIB, MAX_IMAGE_GIB, check_side
from ..files import atomic_output
from ..models.attention_maps import AttentionMap, attention_layers, attention_maps
from .checkpoints import load_checkpoint_model
from .data import Preprocess

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass
class AttentionFigure:
    path: Path
    layer: str
    map_size: tuple[int, int]
    input_size: tuple[int, int]
    queries: list[tuple[int, int]]
    heads: int
    pixel_size: tuple[int, int]  # (width, height) of the PNG

    def summary(self) -> str:
        (mh, mw), (ih, iw) = self.map_size, self.input_size
        qs = ", ".join(f"({r}, {c})" for r, c in self.queries)
        return (
            f"{self.layer}: {mh}x{mw} map ({self.heads} heads) of a {ih}x{iw} input, queries {qs}; "
            f"wrote {self.path} ({self.pixel_size[0]}x{self.pixel_size[1]} px)"
        )


def parse_query(text: str) -> tuple[int, int]:
    """``"ROW,COL"`` -> (row, col)."""
    parts = text.replace(" ", "").split(",")
    try:
        row, col = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--query must be ROW,COL in feature-map cells, e.g. 1,2; got {text!r}") from None
    return row, col


MAX_FIGURE_SIDE = (1 << 16) - 1  # matplotlib's Agg renderer draws less than 2**16 px in each direction


def check_figure_size(panel: int, width: int, height: int) -> None:
    """Refuse a figure that Agg cannot draw or whose RGBA pixels need more than the memory bound of one image, naming
    ``--panel`` and the largest panel that fits (the figure's area grows with the square of the panel)."""
    need = width * height * 4  # Agg renders RGBA
    budget = MAX_IMAGE_GIB * GIB
    if max(width, height) <= MAX_FIGURE_SIDE and need <= budget:
        return
    largest = int(panel * min(MAX_FIGURE_SIDE / max(width, height), (budget / need) ** 0.5))
    raise ValueError(
        f"--panel {panel} is too large for this figure: {width}x{height} px ({need / GIB:.3g} GiB of RGBA) for its "
        f"heads and queries, more than {MAX_FIGURE_SIDE} px a side or {MAX_IMAGE_GIB:g} GiB; use at most {largest}"
    )


def check_queries(queries: Sequence[tuple[int, int]], size: tuple[int, int], layer: str) -> None:
    h, w = size
    for row, col in queries:
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(
                f"query ({row}, {col}) is outside {layer}'s {h}x{w} feature map: rows run 0..{h - 1} and columns "
                f"0..{w - 1} for this input"
            )


def draw_attention(
    image: Tensor,
    amap: AttentionMap,
    queries: Sequence[tuple[int, int]],
    path: str | Path,
    *,
    title: str = "",
    panel: int = 192,
    interpolation: str = "bilinear",
) -> tuple[int, int]:
    """Write the figure for ``image`` (3, H, W) in [0, 1] and its attention map (batch item 0) to ``path`` (PNG).

    Panels are ``panel`` px high and as wide as the image's aspect ratio gives; the PNG is exactly
    ``(heads + 1) * panel_width`` x ``len(queries) * panel`` px. Returns (width, height).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    check_side("--panel", panel, minimum=32, bytes_per_pixel=3)
    mh, mw = amap.size
    check_queries(queries, amap.size, "the layer")
    _, ih, iw = image.shape
    ph, pw = panel, max(32, round(panel * iw / ih))
    heads = amap.probs.shape[1]
    width, height = (heads + 1) * pw, len(queries) * ph
    check_figure_size(panel, width, height)
    shown = F.interpolate(image[None].float(), size=(ph, pw), mode="bilinear", antialias=True, align_corners=False)
    shown = shown[0].clamp(0, 1).permute(1, 2, 0).numpy()
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    cell_h, cell_w = ph / mh, pw / mw  # one feature-map cell in panel pixels
    label = dict(fontsize=8, color="white", va="top", ha="left", bbox=dict(facecolor="black", alpha=0.6, pad=2))
    for i, (row, col) in enumerate(queries):
        probs = amap.probs[0, :, row * mw + col].reshape(heads, 1, mh, mw).float()  # (heads, 1, mh, mw)
        align = {"align_corners": False} if interpolation == "bilinear" else {}
        heat = F.interpolate(probs, size=(ph, pw), mode=interpolation, **align)[:, 0].numpy()
        for j in range(heads + 1):
            ax = fig.add_axes((j * pw / width, 1 - (i + 1) * ph / height, pw / width, ph / height))
            ax.set_axis_off()
            ax.imshow(shown, extent=(0, pw, ph, 0), interpolation="nearest")
            if j == 0:
                text = f"query ({row}, {col})" + (f"\n{title}" if title and i == 0 else "")
            else:
                ax.imshow(
                    heat[j - 1], extent=(0, pw, ph, 0), cmap="inferno", alpha=0.6, vmin=0, interpolation="nearest"
                )
                text = f"head {j}  max {float(probs[j - 1].max()):.2f}"
            ax.add_patch(Rectangle((col * cell_w, row * cell_h), cell_w, cell_h, fill=False, ec="cyan", lw=1.5))
            ax.plot([(col + 0.5) * cell_w], [(row + 0.5) * cell_h], marker="+", color="cyan", markersize=8)
            ax.set_xlim(0, pw)
            ax.set_ylim(ph, 0)
            ax.text(3, 3, text, **label)
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return width, height


@torch.no_grad()
def attention_figure(
    checkpoint: str | Path,
    image: str | Path,
    output: str | Path,
    *,
    layer: str | None = None,
    queries: Sequence[tuple[int, int]] | None = None,
    native_size: bool = False,
    ema: bool = False,
    panel: int = 192,
    interpolation: str = "bilinear",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> AttentionFigure:
    """Draw where ``queries`` (feature-map cells; default: the centre) of ``layer`` (default: the last attention
    layer) attend in ``image``, with the checkpoint's eval preprocessing or, with ``native_size``, at the image's
    own size."""
    (picture,) = read_images([image], max_pixels)  # uint8 (3, H, W); a bad file fails before the model is loaded
    model, meta, _ = load_checkpoint_model(checkpoint, ema=ema)
    model.eval()
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{meta['model']} has no attention layer to draw")
    layer = layer or layers[-1]
    pre = Preprocess.from_dict(meta["preprocess"])
    x = pre.inference_transform(native_size)(picture)[None]  # (1, 3, H, W), normalised
    amap = attention_maps(model, x, [layer])[layer]  # an unknown layer name lists the valid ones
    queries = list(queries) if queries else [(amap.size[0] // 2, amap.size[1] // 2)]
    check_queries(queries, amap.size, layer)
    mean, std = torch.tensor(pre.mean)[:, None, None], torch.tensor(pre.std)[:, None, None]
    shown = x[0] * std + mean  # what the network saw, back in [0, 1]
    title = f"{meta['model']} {layer} ({amap.size[0]}x{amap.size[1]})"
    size = draw_attention(shown, amap, queries, output, title=title, panel=panel, interpolation=interpolation)
    return AttentionFigure(Path(output), layer, amap.size, tuple(x.shape[-2:]), queries, amap.probs.shape[1], size)
