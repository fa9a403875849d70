"""Memory-lean exact attention for MHSA2d: one (batch, head) pair at a time, with its own backward.

Autograd on the plain formula keeps, per (batch, head) pair, the q k^T logits, the position logits, their sum and
the softmax probabilities alive at once (several N x N tensors; timm's layer the same). Here each pair builds one
N x N matrix, turns it into probabilities in place and keeps only those for the backward pass, which frees them
pair by pair; 60% of the pairs' probabilities are recomputed there instead of kept (one extra q k^T product for
those pairs). The backward uses ``sum_j P_ij dP_ij = dout_i . out_i`` (as FlashAttention does), so it needs no
second N x N buffer beyond dP, into which the logit gradient is written in place.
"""

from __future__ import annotations

import torch
from torch import Tensor


def offset_index(n: int, device: torch.device) -> Tensor:
    """(n, n) index into a (2n-1)-entry table: ``index[i, j] = j - i + n - 1``."""
    pos = torch.arange(n, device=device)
    return pos[None, :] - pos[:, None] + n - 1


KEEP_FRACTION = 0.4  # of the pairs whose probabilities are kept for backward; the others are recomputed there


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half-precision inputs, the input's own type for fp32 and fp64."""
    return torch.promote_types(dtype, torch.float32)


def _probs(q, k, lh, lw, i, size, idx, relative, content, dtype):
    """Softmax probabilities (N, N) of pair ``i``; the logits are built in one buffer and normalised in place."""
    H, W = size
    N = q.shape[1]
    logits = q[i] @ k[i].transpose(0, 1) if content else q.new_zeros(N, N)  # (N, N)
    acc = _accumulation_dtype(dtype)
    logits = logits.to(acc)  # softmax in at least fp32 (a no-op in fp32 and fp64)
    if lh is not None:
        rows = lh[i].gather(1, idx[0]) if relative else lh[i]  # (N, H): logit of key row p for query n
        cols = lw[i].gather(1, idx[1]) if relative else lw[i]  # (N, W): logit of key column s for query n
        logits.view(N, H, W).add_(rows.to(acc)[:, :, None]).add_(cols.to(acc)[:, None, :])
    p = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()
    return p.div_(p.sum(dim=1, keepdim=True)).to(dtype)


class ChunkedAttention(torch.autograd.Function):
    """``softmax(q k^T + position logits) v`` for q, k, v of shape (P, N, d) (P = batch x heads pairs).

    Position logits come as small per-query tables: relative ``lh`` (P, N, 2H-1) and ``lw`` (P, N, 2W-1) with
    ``logit[n=(x, y), m=(p, s)] = lh[n, p - x + H - 1] + lw[n, s - y + W - 1]``; absolute ``lh`` (P, N, H) and
    ``lw`` (P, N, W) with ``lh[n, p] + lw[n, s]``; or none. ``q`` is already scaled. For training, the
    probabilities of the first ``KEEP_FRACTION`` of the pairs are kept and the others recomputed in backward.
    """

    @staticmethod
    def forward(ctx, q, k, v, lh, lw, size, relative, content):  # noqa: D102 - see the class
        H, W = size
        P = q.shape[0]
        grad = any(ctx.needs_input_grad)
        keep = max(1, int(P * KEEP_FRACTION)) if grad else 0
        idx = (None, None)
        if lh is not None and relative:
            idx = (
                offset_index(H, q.device).repeat_interleave(W, dim=0),  # (N, H): key row p - x + H - 1
                offset_index(W, q.device).repeat(H, 1),  # (N, W): key column s - y + W - 1
            )
        args = (size, idx, relative, content, v.dtype)
        probs, out = [], torch.empty_like(v)
        for i in range(P):
            p = _probs(q, k, lh, lw, i, *args)
            out[i] = p @ v[i]  # (N, d)
            probs.append(p if i < keep else None)
        if grad:
            ctx.save_for_backward(q, k, v, out, lh, lw)
            ctx.probs, ctx.args = probs, args
        return out

    @staticmethod
    def backward(ctx, dout):  # noqa: D102
        q, k, v, out, lh, lw = ctx.saved_tensors
        size, idx, relative, content, dtype = ctx.args
        H, W = size
        P, N, _ = q.shape
        dq = torch.zeros_like(q) if content else None
        dk = torch.zeros_like(k) if content else None
        dv = torch.empty_like(v)
        dlh = torch.zeros_like(lh) if lh is not None else None
        dlw = torch.zeros_like(lw) if lw is not None else None
        acc = _accumulation_dtype(dtype)
        rowdot = (dout.to(acc) * out.to(acc)).sum(-1)  # (P, N): sum_j P_ij dP_ij = dout_i . out_i
        for i in reversed(range(P)):  # recomputed pairs first, while the kept ones are still alive
            p = ctx.probs[i]
            ctx.probs[i] = None  # freed pair by pair
            if p is None:
                p = _probs(q, k, lh, lw, i, *ctx.args)
            dv[i] = p.transpose(0, 1) @ dout[i]
            ds = (dout[i] @ v[i].transpose(0, 1)).to(acc)  # (N, N) dP
            ds.sub_(rowdot[i][:, None]).mul_(p)  # logit gradient, in place
            del p
            if content:
                dsl = ds.to(q.dtype)
                dq[i] = dsl @ k[i]
                dk[i] = dsl.transpose(0, 1) @ q[i]
            if dlh is not None:
                grid = ds.view(N, H, W)
                d_rows, d_cols = grid.sum(2), grid.sum(1)  # (N, H), (N, W)
                if relative:
                    dlh[i].scatter_add_(1, idx[0], d_rows.to(dlh.dtype))
                    dlw[i].scatter_add_(1, idx[1], d_cols.to(dlw.dtype))
                else:
                    dlh[i] = d_rows
                    dlw[i] = d_cols
        ctx.probs = None
        return dq, dk, dv, dlh, dlw, None, None, None
