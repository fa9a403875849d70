"""Multi-head self-attention over a 2-D feature map: the layer a BoT block uses instead of the 3x3 conv.

Paper section 3 and figure 4; the official TensorFlow gist defines the details kept here: bias-free q/k/v 1x1
projections (one fused ``qkv`` conv, ordered [q; k; v], heads as contiguous channel groups), q scaled by d^-0.5
before both logit terms, softmax over all H*W keys, no output projection, no dropout, no bias.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .choices import BACKENDS, POS_ENCODINGS
from .chunked import ChunkedAttention
from .position import AbsolutePosition2d, RelativePosition2d


class MHSA2d(nn.Module):
    """Global multi-head self-attention on (B, C, H, W) maps, at any H and W.

    The four logit modes of the paper's ablation (table 4) are reachable:

    ==========================  =========================================================
    ``q k^T + q r_rel^T``       ``pos_enc="relative"`` (default)
    ``q k^T + q r_abs^T``       ``pos_enc="absolute"``
    ``q k^T``                   ``pos_enc="none"``
    ``q r^T`` only              ``content_content=False`` with a position encoding
    ==========================  =========================================================

    Args:
        dim: channels in and out (C). Must be divisible by ``heads``.
        heads: number of heads; head width is ``dim // heads``.
        dim_head_qk: width of each head's queries and keys (and of the position tables); default ``dim // heads``.
            The values keep ``dim // heads`` per head. timm's ``eca_botnext26ts`` uses 16.
        pos_enc: "relative", "absolute" or "none".
        content_content: include the ``q k^T`` logits.
        content_position: include the ``q r^T`` logits (ignored when ``pos_enc="none"``).
        ref_size: feature-map size at which the position tables are exact (see ``botnet.layers.position``).
        pos_extend: policy of relative tables for maps larger than ``ref_size``: "clip" or "interpolate".
        backend: how the attention is computed; every backend gives the same numbers (tested against "math").

            - "math": the explicit reference, ``softmax(q k^T + q r^T) v`` with every (B, heads, N, N) tensor.
            - "sdpa": ``F.scaled_dot_product_attention`` with the position logits as an additive bias.
            - "chunked": one (batch, head) pair at a time with its own backward (:mod:`botnet.layers.chunked`):
              builds one N x N matrix at a time, keeps only the probabilities for the backward pass, and no
              recomputation.
            - "flex": FlexAttention (``torch.nn.attention.flex_attention``, compiled) with a ``score_mod`` that
              reads the small per-query tables (B, heads, N, 2H-1) and (B, heads, N, 2W-1) of position logits instead
              of an N x N bias. Forward and backward on GPU; on CPU FlexAttention has no backward, so there it is
              for inference (under ``torch.no_grad()``), and a training call is refused with a clear error.
            - "auto": "chunked" on maps of >= 1024 positions (32x32 and up), where it is the fastest and holds a
              third of the memory, "math" below and under low-precision autocast (chunked's fp32 softmax and casts
              per pair take away most of bf16's gain); "flex" only when asked for. ``benchmarks/attention.py``
              measures the backends against timm's BottleneckAttn; its figures are in docs/speed.md.
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 4,
        dim_head_qk: int | None = None,
        pos_enc: str = "relative",
        content_content: bool = True,
        content_position: bool = True,
        ref_size: int | tuple[int, int] = 14,
        pos_extend: str = "clip",
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or not isinstance(heads, int) or dim < 1 or heads < 1:
            raise ValueError(f"dim and heads must be positive integers, got dim={dim!r}, heads={heads!r}")
        if dim % heads != 0:
            raise ValueError(f"heads must divide dim: dim={dim} is not divisible by heads={heads}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if pos_enc not in POS_ENCODINGS:
            raise ValueError(f"pos_enc must be one of {POS_ENCODINGS}, got {pos_enc!r}")
        use_position = content_position and pos_enc != "none"
        if not content_content and not use_position:
            raise ValueError(
                "MHSA2d needs at least one logit term: content_content=False requires a position encoding "
                f"(pos_enc 'relative' or 'absolute' with content_position=True), got pos_enc={pos_enc!r}, "
                f"content_position={content_position}"
            )
        if dim_head_qk is not None and (not isinstance(dim_head_qk, int) or dim_head_qk < 1):
            raise ValueError(f"dim_head_qk must be a positive integer or None, got {dim_head_qk!r}")
        self.dim = dim
        self.heads = heads
        self.dim_head = dim // heads  # of the values
        self.dim_head_qk = dim_head_qk or self.dim_head
        self.scale = self.dim_head_qk**-0.5
        self.content_content = content_content
        self.backend = backend
        # Output channels ordered [q; k; v], each split into heads as contiguous channel groups.
        self.qkv = nn.Conv2d(dim, 2 * heads * self.dim_head_qk + dim, kernel_size=1, bias=False)
        self.pos: nn.Module | None
        if not use_position:
            self.pos = None
        elif pos_enc == "relative":
            self.pos = RelativePosition2d(ref_size, self.dim_head_qk, extend=pos_extend)
        else:
            self.pos = AbsolutePosition2d(ref_size, self.dim_head_qk)
        self.pos_enc = pos_enc if use_position else "none"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.qkv.weight, std=0.01)  # the official initialiser
        if self.pos is not None:
            self.pos.reset_parameters()

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(
                f"MHSA2d(dim={self.dim}) expects a (B, {self.dim}, H, W) tensor, got shape {tuple(x.shape)}"
            )

    def attention_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-softmax logits and values for ``x`` of shape (B, C, H, W).

        Returns:
            logits (B, heads, H*W, H*W) and v (B, heads, H*W, d).
        """
        self._check_input(x)
        B, C, H, W = x.shape
        q, k, v = self._split(x)  # (B, heads, d_qk, H*W) twice and (B, heads, d, H*W)
        q = q.transpose(-1, -2) * self.scale  # (B, heads, H*W, d_qk), scaled before both logit terms
        v = v.transpose(-1, -2)  # (B, heads, H*W, d)
        logits = _batched_matmul(q, k) if self.content_content else None  # (B, heads, H*W, H*W)
        if self.pos is not None:
            pos_logits = self.pos(q.reshape(B, self.heads, H, W, self.dim_head_qk))  # (B, heads, H*W, H*W)
            logits = pos_logits if logits is None else logits + pos_logits
        return logits, v

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        self._check_input(x)
        backend = self.resolved_backend(x.shape[-2] * x.shape[-1], x.device.type)
        if backend == "math":
            logits, v = self.attention_logits(x)  # validates x
            out = _batched_matmul(logits.softmax(dim=-1), v)  # (B, heads, H*W, d)
        else:
            q, k, v = self._qkv(x)
            run = {"sdpa": self._sdpa, "chunked": self._chunked, "flex": self._flex}[backend]
            out = run(q, k, v, x.shape[2:])  # (B, heads, H*W, d)
        B, C, H, W = x.shape
        return out.transpose(-1, -2).reshape(B, C, H, W)  # heads concatenated back: (B, C, H, W)

    def resolved_backend(self, positions: int = 0, device_type: str = "cpu") -> str:
        """The backend used for a map of ``positions`` (H*W) on ``device_type`` (see the class docstring)."""
        if not self.content_content and self.backend == "sdpa":
            return "math"  # SDPA always adds q k^T
        if self.backend != "auto":
            return self.backend
        try:
            low_precision = torch.is_autocast_enabled(device_type)
        except RuntimeError:  # a device without autocast, e.g. "meta" when counting operations
            low_precision = False
        return "chunked" if positions >= 1024 and not low_precision else "math"

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unscaled q, k (B, heads, d_qk, H*W) and v (B, heads, d, H*W), channels first."""
        B, C, H, W = x.shape
        qk = self.heads * self.dim_head_qk
        q, k, v = self.qkv(x).split([qk, qk, C], dim=1)  # [q; k; v] along the channels
        # heads as contiguous channel groups: (B, heads * d, H, W) -> (B, heads, d, H*W)
        return (
            q.reshape(B, self.heads, self.dim_head_qk, H * W),
            k.reshape(B, self.heads, self.dim_head_qk, H * W),
            v.reshape(B, self.heads, self.dim_head, H * W),
        )

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unscaled q, k (B, heads, H*W, d_qk) and v (B, heads, H*W, d)."""
        q, k, v = self._split(x)
        return q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)

    def _position_bias(self, q_scaled: Tensor, size: torch.Size) -> Tensor | None:
        """Position logits (n, heads, N, N) for scaled queries (n, heads, N, d), or None without positions."""
        if self.pos is None:
            return None
        n, heads, _, d = q_scaled.shape
        return self.pos(q_scaled.reshape(n, heads, size[0], size[1], d))

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, size: torch.Size) -> Tensor:
        bias = self._position_bias(q * self.scale, size)  # (B, heads, N, N) or None
        if bias is not None:
            bias = bias.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)  # (B, heads, N, d)

    def _position_tables(self, q_scaled: Tensor, size: torch.Size) -> tuple[Tensor | None, Tensor | None]:
        """Per-query position logits against the small tables: (B, heads, N, 2H-1) and (B, heads, N, 2W-1) for
        relative positions, (B, heads, N, H) and (B, heads, N, W) for absolute ones, or (None, None)."""
        if self.pos is None:
            return None, None
        table_h, table_w = self.pos.tables(size[0], size[1])
        return q_scaled @ table_h.to(q_scaled.dtype).t(), q_scaled @ table_w.to(q_scaled.dtype).t()

    def _chunked(self, q: Tensor, k: Tensor, v: Tensor, size: torch.Size) -> Tensor:
        B, heads, N, _ = q.shape
        d = v.shape[-1]
        q = q * self.scale
        lh, lw = self._position_tables(q, size)
        pairs = [t.reshape(B * heads, N, -1) if t is not None else None for t in (q, k, v, lh, lw)]
        relative = isinstance(self.pos, RelativePosition2d)
        out = ChunkedAttention.apply(*pairs, (int(size[0]), int(size[1])), relative, self.content_content)
        return out.reshape(B, heads, N, d)

    def _flex(self, q: Tensor, k: Tensor, v: Tensor, size: torch.Size) -> Tensor:
        if (
            q.device.type == "cpu"
            and torch.is_grad_enabled()
            and any(t.requires_grad for t in (q, k, v, *self.parameters()))
        ):
            raise RuntimeError(
                "MHSA2d backend 'flex' cannot train on CPU: FlexAttention has no CPU backward. Run it under "
                "torch.no_grad() (inference), or use backend 'math', 'sdpa' or 'chunked' for CPU training"
            )
        q = q * self.scale  # (B, heads, N, d)
        lh, lw = self._position_tables(q, size)
        relative = isinstance(self.pos, RelativePosition2d)
        score_mod = _flex_score_mod(lh, lw, relative, int(size[0]), int(size[1]), self.content_content)
        return flex_attention_kernel()(q, k, v, score_mod=score_mod, scale=1.0)  # (B, heads, N, d)

    def extra_repr(self) -> str:
        qk = f", dim_head_qk={self.dim_head_qk}" if self.dim_head_qk != self.dim_head else ""
        return (
            f"dim={self.dim}, heads={self.heads}{qk}, pos_enc={self.pos_enc!r}, "
            f"content_content={self.content_content}, backend={self.backend!r}"
        )


def _batched_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for a (B, heads, n, k) and b (B, heads, k, m), as one ``bmm`` over B * heads.

    The same kernel ``@`` runs, without matmul's broadcasting rules, whose size-1 checks would otherwise pin the
    batch size of an exported model.
    """
    B, heads, n, k = a.shape
    m = b.shape[-1]
    return torch.bmm(a.reshape(B * heads, n, k), b.reshape(B * heads, k, m)).view(B, heads, n, m)


def _flex_score_mod(lh: Tensor | None, lw: Tensor | None, relative: bool, H: int, W: int, content: bool):
    """FlexAttention ``score_mod`` adding the position logits of query ``qi`` and key ``ki`` from small tables.

    Relative: ``lh[b, h, qi, kx - qx + H - 1] + lw[b, h, qi, ky - qy + W - 1]`` with ``lh = q rel_h^T`` of shape
    (B, heads, N, 2H-1) and ``lw = q rel_w^T`` (B, heads, N, 2W-1), the official ``rel_to_abs`` semantics.
    Absolute: ``lh[b, h, qi, kx] + lw[b, h, qi, ky]`` with (B, heads, N, H) and (B, heads, N, W) tables.
    """
    if lh is None:
        return lambda score, b, h, qi, ki: score
    off_h, off_w = (H - 1, W - 1) if relative else (0, 0)

    def score_mod(score, b, h, qi, ki):
        kx, ky = ki // W, ki % W
        if relative:
            kx, ky = kx - qi // W, ky - qi % W
        bias = lh[b, h, qi, kx + off_h] + lw[b, h, qi, ky + off_w]
        return score + bias if content else bias

    return score_mod


@functools.cache
def flex_attention_kernel():
    """``torch.compile(flex_attention)``, built once per process (eager FlexAttention materialises every score)."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)
