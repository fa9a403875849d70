"""Position encodings of the BoTNet self-attention layer (paper section 3, "relative position encodings").

Two learned encodings feed the content-position logits ``q r^T``:

* relative (the paper's default): tables ``rel_h`` (2H-1, d) and ``rel_w`` (2W-1, d), one row per offset, with
  the exact semantics of the official ``rel_to_abs`` code (see :func:`relative_logits`);
* absolute: tables ``abs_h`` (H, d) and ``abs_w`` (W, d), ``emb[x, y] = abs_h[x] + abs_w[y]``.

Geometry is read from the input, never stored. Each table has a *reference* size (the feature map it was built
for) and an explicit policy for other sizes:

* relative, smaller map: the central rows are taken, so every offset keeps its meaning (exact);
* relative, larger map: ``extend="clip"`` (default) gives offsets beyond the table the edge row (the clipped
  relative distance of Shaw et al. 2018), ``extend="interpolate"`` stretches the table linearly with the centre
  row (offset 0) and both edge rows fixed;
* absolute: linear interpolation in both directions (as for ViT position embeddings).

Every policy returns the table unchanged at the reference size, and checkpoints whose tables were built for
another reference size load through the same functions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .choices import EXTEND_MODES


def _check_extend(extend: str) -> None:
    if extend not in EXTEND_MODES:
        raise ValueError(f"extend must be one of {EXTEND_MODES}, got {extend!r}")


def resize_rel_table(table: Tensor, length: int, extend: str = "clip") -> Tensor:
    """Resize a relative table of shape (2L-1, d) to (2*length-1, d).

    Row ``L-1+o`` holds offset ``o``. A shorter table is the central slice (exact); a longer one follows
    ``extend`` (module docstring). At the table's own length the rows are returned unchanged (a copy under
    "clip", whose single indexing formula keeps exported models dynamic in the map size).
    """
    _check_extend(extend)
    rows = table.shape[0]
    if rows % 2 != 1:
        raise ValueError(f"a relative table has an odd number of rows (2L-1), got shape {tuple(table.shape)}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    ref = (rows + 1) // 2
    if extend == "clip":
        # One formula for every length, so export keeps the map size dynamic: a shorter table is the central
        # slice, an equal one the table itself, a longer one repeats the edge rows for the far offsets.
        offsets = torch.arange(-(length - 1), length, device=table.device)
        return table[offsets.clamp(-(ref - 1), ref - 1) + ref - 1]
    if length == ref:
        return table
    if length < ref:
        return table[ref - length : ref + length - 1]
    # (2L-1, d) -> (1, d, 2L-1) -> (1, d, 2*length-1) -> (2*length-1, d); align_corners keeps centre and ends.
    stretched = F.interpolate(table.t()[None], size=2 * length - 1, mode="linear", align_corners=True)
    return stretched[0].t()


def resize_abs_table(table: Tensor, length: int) -> Tensor:
    """Resize an absolute table of shape (L, d) to (length, d) by linear interpolation (the same rows at L)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    # Linear interpolation to the table's own length is the identity (every sample falls on a row), so there is
    # no size branch: exported models stay dynamic in the map size.
    # (L, d) -> (1, d, L) -> (1, d, length) -> (length, d)
    return F.interpolate(table.t()[None], size=length, mode="linear", align_corners=False)[0].t()


def _offset_index(n: int, device: torch.device) -> Tensor:
    """(n, n) index into a (2n-1)-row table: ``index[i, j] = j - i + n - 1`` (offset from query i to key j)."""
    pos = torch.arange(n, device=device)
    return pos[None, :] - pos[:, None] + n - 1


def relative_logits(q: Tensor, rel_h: Tensor, rel_w: Tensor) -> Tensor:
    """Content-position logits with 2-D relative position tables (official ``rel_to_abs`` semantics).

    Args:
        q: queries, shape (B, heads, H, W, d), already scaled.
        rel_h: height table, shape (2H-1, d).
        rel_w: width table, shape (2W-1, d).

    Returns:
        Logits of shape (B, heads, H*W, H*W) with, for query (x, y) and key (p, s),
        ``out[..., x*W + y, p*W + s] = q[x, y] . rel_h[p - x + H - 1] + q[x, y] . rel_w[s - y + W - 1]``.
    """
    if q.dim() != 5:
        raise ValueError(f"q must have shape (B, heads, H, W, d), got {tuple(q.shape)}")
    B, heads, H, W, d = q.shape
    if tuple(rel_h.shape) != (2 * H - 1, d) or tuple(rel_w.shape) != (2 * W - 1, d):
        raise ValueError(
            f"for q of shape {tuple(q.shape)} the tables must be rel_h ({2 * H - 1}, {d}) and rel_w "
            f"({2 * W - 1}, {d}); got {tuple(rel_h.shape)} and {tuple(rel_w.shape)}"
        )
    # One matmul per axis against the small tables: logits for every query and every offset.
    logits_h = torch.matmul(q, rel_h.t())  # (B, heads, H, W, 2H-1)
    logits_w = torch.matmul(q, rel_w.t())  # (B, heads, H, W, 2W-1)
    # Relative -> absolute key position: pick offset p - x (height) and s - y (width).
    index_h = _offset_index(H, q.device).view(1, 1, H, 1, H).expand(B, heads, H, W, H)
    index_w = _offset_index(W, q.device).view(1, 1, 1, W, W).expand(B, heads, H, W, W)
    abs_h = torch.gather(logits_h, -1, index_h)  # (B, heads, H, W, H): key row p
    abs_w = torch.gather(logits_w, -1, index_w)  # (B, heads, H, W, W): key column s
    logits = abs_h[..., :, None] + abs_w[..., None, :]  # (B, heads, H, W, H, W)
    return logits.reshape(B, heads, H * W, H * W)


def absolute_logits(q: Tensor, abs_h: Tensor, abs_w: Tensor) -> Tensor:
    """Content-position logits with absolute tables: ``out[..., x*W+y, p*W+s] = q[x, y] . (abs_h[p] + abs_w[s])``.

    Args:
        q: queries, shape (B, heads, H, W, d), already scaled.
        abs_h: (H, d). abs_w: (W, d).

    Returns:
        Logits of shape (B, heads, H*W, H*W).
    """
    if q.dim() != 5:
        raise ValueError(f"q must have shape (B, heads, H, W, d), got {tuple(q.shape)}")
    B, heads, H, W, d = q.shape
    if tuple(abs_h.shape) != (H, d) or tuple(abs_w.shape) != (W, d):
        raise ValueError(
            f"for q of shape {tuple(q.shape)} the tables must be abs_h ({H}, {d}) and abs_w ({W}, {d}); "
            f"got {tuple(abs_h.shape)} and {tuple(abs_w.shape)}"
        )
    emb = (abs_h[:, None, :] + abs_w[None, :, :]).reshape(H * W, d)  # (H*W, d)
    return torch.matmul(q.reshape(B, heads, H * W, d), emb.t())  # (B, heads, H*W, H*W)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"a reference size must be positive, got {size!r}")
    return int(h), int(w)


class RelativePosition2d(nn.Module):
    """Learned 2-D relative position tables ``rel_h`` (2H-1, d) and ``rel_w`` (2W-1, d), shared by the heads.

    Args:
        ref_size: feature-map size (H, W) at which the tables are exact.
        dim_head: per-head query width d.
        extend: policy for maps larger than ``ref_size``: "clip" or "interpolate".
    """

    def __init__(self, ref_size: int | tuple[int, int], dim_head: int, *, extend: str = "clip") -> None:
        super().__init__()
        _check_extend(extend)
        ref_h, ref_w = _pair(ref_size)
        self.extend = extend
        self.rel_h = nn.Parameter(torch.empty(2 * ref_h - 1, dim_head))
        self.rel_w = nn.Parameter(torch.empty(2 * ref_w - 1, dim_head))
        self.reset_parameters()

    @property
    def ref_size(self) -> tuple[int, int]:
        return (self.rel_h.shape[0] + 1) // 2, (self.rel_w.shape[0] + 1) // 2

    def reset_parameters(self) -> None:
        # The intended N(0, d^-0.5) of the official code (whose initialiser used mean d^-0.5, std 1 by mistake).
        std = self.rel_h.shape[1] ** -0.5
        nn.init.normal_(self.rel_h, std=std)
        nn.init.normal_(self.rel_w, std=std)

    def tables(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """The tables for an (height, width) map under this module's resize policy."""
        return resize_rel_table(self.rel_h, height, self.extend), resize_rel_table(self.rel_w, width, self.extend)

    def forward(self, q: Tensor) -> Tensor:
        """q (B, heads, H, W, d) -> logits (B, heads, H*W, H*W)."""
        rel_h, rel_w = self.tables(q.shape[2], q.shape[3])
        return relative_logits(q, rel_h, rel_w)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("rel_h", "rel_w"):
            key = prefix + name
            own = getattr(self, name)
            if key in state_dict and state_dict[key].shape[0] != own.shape[0] and state_dict[key].dim() == 2:
                state_dict[key] = resize_rel_table(state_dict[key], (own.shape[0] + 1) // 2, self.extend)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"ref_size={self.ref_size}, dim_head={self.rel_h.shape[1]}, extend={self.extend!r}"


class AbsolutePosition2d(nn.Module):
    """Learned 2-D absolute position tables ``abs_h`` (H, d) and ``abs_w`` (W, d); ``emb[x, y] = abs_h[x] + abs_w[y]``.

    Args:
        ref_size: feature-map size (H, W) at which the tables are exact; other sizes interpolate linearly.
        dim_head: per-head query width d.
    """

    def __init__(self, ref_size: int | tuple[int, int], dim_head: int) -> None:
        super().__init__()
        ref_h, ref_w = _pair(ref_size)
        self.abs_h = nn.Parameter(torch.empty(ref_h, dim_head))
        self.abs_w = nn.Parameter(torch.empty(ref_w, dim_head))
        self.reset_parameters()

    @property
    def ref_size(self) -> tuple[int, int]:
        return self.abs_h.shape[0], self.abs_w.shape[0]

    def reset_parameters(self) -> None:
        std = self.abs_h.shape[1] ** -0.5
        nn.init.normal_(self.abs_h, std=std)
        nn.init.normal_(self.abs_w, std=std)

    def tables(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """The tables for an (height, width) map (linear interpolation away from the reference size)."""
        return resize_abs_table(self.abs_h, height), resize_abs_table(self.abs_w, width)

    def forward(self, q: Tensor) -> Tensor:
        """q (B, heads, H, W, d) -> logits (B, heads, H*W, H*W)."""
        abs_h, abs_w = self.tables(q.shape[2], q.shape[3])
        return absolute_logits(q, abs_h, abs_w)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("abs_h", "abs_w"):
            key = prefix + name
            own = getattr(self, name)
            if key in state_dict and state_dict[key].shape[0] != own.shape[0] and state_dict[key].dim() == 2:
                state_dict[key] = resize_abs_table(state_dict[key], own.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"ref_size={self.ref_size}, dim_head={self.abs_h.shape[1]}"
