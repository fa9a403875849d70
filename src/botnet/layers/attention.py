"""Multi-head self-attention over a 2-D feature map: the layer a BoT block uses instead of the 3x3 conv.

Paper section 3 and figure 4; the official TensorFlow gist defines the details kept here: bias-free q/k/v 1x1
projections (one fused ``qkv`` conv, ordered [q; k; v], heads as contiguous channel groups), q scaled by d^-0.5
before both logit terms, softmax over all H*W keys, no output projection, no dropout, no bias.
"""

from __future__ import annotations

from torch import Tensor, nn

from .position import AbsolutePosition2d, RelativePosition2d

POS_ENCODINGS = ("relative", "absolute", "none")


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
        pos_enc: "relative", "absolute" or "none".
        content_content: include the ``q k^T`` logits.
        content_position: include the ``q r^T`` logits (ignored when ``pos_enc="none"``).
        ref_size: feature-map size at which the position tables are exact (see ``botnet.layers.position``).
        pos_extend: policy of relative tables for maps larger than ``ref_size``: "clip" or "interpolate".
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 4,
        pos_enc: str = "relative",
        content_content: bool = True,
        content_position: bool = True,
        ref_size: int | tuple[int, int] = 14,
        pos_extend: str = "clip",
    ) -> None:
        super().__init__()
        if not isinstance(dim, int) or not isinstance(heads, int) or dim < 1 or heads < 1:
            raise ValueError(f"dim and heads must be positive integers, got dim={dim!r}, heads={heads!r}")
        if dim % heads != 0:
            raise ValueError(f"heads must divide dim: dim={dim} is not divisible by heads={heads}")
        if pos_enc not in POS_ENCODINGS:
            raise ValueError(f"pos_enc must be one of {POS_ENCODINGS}, got {pos_enc!r}")
        use_position = content_position and pos_enc != "none"
        if not content_content and not use_position:
            raise ValueError(
                "MHSA2d needs at least one logit term: content_content=False requires a position encoding "
                f"(pos_enc 'relative' or 'absolute' with content_position=True), got pos_enc={pos_enc!r}, "
                f"content_position={content_position}"
            )
        self.dim = dim
        self.heads = heads
        self.dim_head = dim // heads
        self.scale = self.dim_head**-0.5
        self.content_content = content_content
        self.qkv = nn.Conv2d(dim, 3 * dim, kernel_size=1, bias=False)
        self.pos: nn.Module | None
        if not use_position:
            self.pos = None
        elif pos_enc == "relative":
            self.pos = RelativePosition2d(ref_size, self.dim_head, extend=pos_extend)
        else:
            self.pos = AbsolutePosition2d(ref_size, self.dim_head)
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
        q, k, v = self.qkv(x).reshape(B, 3, self.heads, self.dim_head, H * W).unbind(1)  # each (B, heads, d, H*W)
        q = q.transpose(-1, -2) * self.scale  # (B, heads, H*W, d), scaled before both logit terms
        v = v.transpose(-1, -2)  # (B, heads, H*W, d)
        logits = q @ k if self.content_content else None  # (B, heads, H*W, H*W)
        if self.pos is not None:
            pos_logits = self.pos(q.reshape(B, self.heads, H, W, self.dim_head))  # (B, heads, H*W, H*W)
            logits = pos_logits if logits is None else logits + pos_logits
        return logits, v

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        logits, v = self.attention_logits(x)  # validates x
        B, C, H, W = x.shape
        out = logits.softmax(dim=-1) @ v  # (B, heads, H*W, d)
        return out.transpose(-1, -2).reshape(B, C, H, W)  # heads concatenated back: (B, C, H, W)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, pos_enc={self.pos_enc!r}, content_content={self.content_content}"
