"""Naive references written from the paper / official-code formulas with explicit loops, for the tests only."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# The logit modes of the paper's ablation, as MHSA2d options.
MODES = {
    "qk+qr_rel": dict(pos_enc="relative"),
    "qk+qr_abs": dict(pos_enc="absolute"),
    "qk": dict(pos_enc="none"),
    "qr_rel": dict(pos_enc="relative", content_content=False),
    "qr_abs": dict(pos_enc="absolute", content_content=False),
}


def _pairwise_logits_loop(q: Tensor, position: Callable[[int, int, int, int], Tensor]) -> Tensor:
    """logit[(x,y) -> (p,s)] = q[x,y] . position(x, y, p, s), one entry at a time."""
    B, heads, H, W, _ = q.shape
    out = q.new_zeros(B, heads, H * W, H * W)
    for x in range(H):
        for y in range(W):
            for p in range(H):
                for s in range(W):
                    out[:, :, x * W + y, p * W + s] = (q[:, :, x, y, :] * position(x, y, p, s)).sum(-1)
    return out


def relative_logits_loop(q: Tensor, rel_h: Tensor, rel_w: Tensor) -> Tensor:
    """logit[(x,y) -> (p,s)] = q[x,y] . rel_h[p - x + H - 1] + q[x,y] . rel_w[s - y + W - 1]."""
    H, W = q.shape[2], q.shape[3]
    return _pairwise_logits_loop(q, lambda x, y, p, s: rel_h[p - x + H - 1] + rel_w[s - y + W - 1])


def absolute_logits_loop(q: Tensor, abs_h: Tensor, abs_w: Tensor) -> Tensor:
    """logit[(x,y) -> (p,s)] = q[x,y] . (abs_h[p] + abs_w[s])."""
    return _pairwise_logits_loop(q, lambda x, y, p, s: abs_h[p] + abs_w[s])


def mhsa_loop(
    x: Tensor,
    qkv_weight: Tensor,
    heads: int,
    *,
    rel: tuple[Tensor, Tensor] | None = None,
    absolute: tuple[Tensor, Tensor] | None = None,
    content_content: bool = True,
) -> Tensor:
    """SPEC section 1 step by step: per image, per head, per query position, softmax over all keys."""
    B, C, H, W = x.shape
    d = C // heads
    w = qkv_weight.reshape(3 * C, C)
    out = x.new_zeros(B, C, H, W)
    for b in range(B):
        feats = x[b].reshape(C, H * W).t()  # (N, C), position n = x*W + y
        qkv = feats @ w.t()  # (N, 3C): [q; k; v]
        for h in range(heads):
            q = qkv[:, h * d : (h + 1) * d] * d**-0.5  # heads are contiguous channel groups
            k = qkv[:, C + h * d : C + (h + 1) * d]
            v = qkv[:, 2 * C + h * d : 2 * C + (h + 1) * d]
            for n in range(H * W):
                qx, qy = divmod(n, W)
                logits = []
                for m in range(H * W):
                    kp, ks = divmod(m, W)
                    logit = q[n] @ k[m] if content_content else q.new_zeros(())
                    if rel is not None:
                        logit = logit + q[n] @ (rel[0][kp - qx + H - 1] + rel[1][ks - qy + W - 1])
                    if absolute is not None:
                        logit = logit + q[n] @ (absolute[0][kp] + absolute[1][ks])
                    logits.append(logit)
                weights = torch.softmax(torch.stack(logits), dim=0)  # (N,)
                out[b, h * d : (h + 1) * d, qx, qy] = weights @ v
    return out
