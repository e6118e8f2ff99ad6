r"""Scaled dot-product attention and multi-head attention, written out.

Shapes follow :func:`torch.nn.functional.scaled_dot_product_attention`:
``q`` is ``(..., L_q, d_k)``, ``k`` is ``(..., L_k, d_k)``, ``v`` is ``(..., L_k, d_v)``,
and any leading batch/head dimensions broadcast. A boolean mask uses torch's
meaning: ``True`` means "may attend". A float mask is added to the scores.

.. math::
    \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "softmax",
    "causal_mask",
    "padding_mask",
    "scaled_dot_product_attention",
    "MultiHeadAttention",
]


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax: subtract the max before exponentiating.

    Rows that are entirely ``-inf`` (everything masked) give zeros, not NaN.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"softmax needs a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    x_max = x.amax(dim=dim, keepdim=True)
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    e = torch.exp(x - x_max)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(length, length)`` mask: position ``i`` may attend to ``j <= i``."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor | list[int], max_length: int | None = None) -> torch.Tensor:
    """Boolean key mask of shape ``(B, 1, 1, L)`` from sequence lengths.

    ``True`` marks real tokens, which may be attended to; it broadcasts against
    scores of shape ``(B, heads, L_q, L)``.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.numel() == 0:
        raise ValueError(f"lengths must be a non-empty 1-D sequence, got shape {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or (lengths < 1).any():
        raise ValueError("lengths must be positive integers")
    max_length = int(lengths.max()) if max_length is None else max_length
    if int(lengths.max()) > max_length:
        raise ValueError(f"a length {int(lengths.max())} exceeds max_length={max_length}")
    keep = torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]
    return keep[:, None, None, :]


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{name} must have shape (..., L, d), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the feature size d_k: q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys: k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "leading (batch/head) dimensions do not broadcast: "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        ) from None
    if mask is not None:
        if not torch.is_tensor(mask):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"mask must be bool (True = may attend) or float, got {mask.dtype}")
        scores_shape = (*batch, q.shape[-2], k.shape[-2])
        try:
            if torch.broadcast_shapes(mask.shape, scores_shape) != torch.Size(scores_shape):
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                f"{tuple(scores_shape)}"
            ) from None


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(output, weights)``; the weights sum to 1 over the keys.

    Unlike torch's fused kernel this version returns the weights, and it supports
    double backward (needed for gradient penalties such as R1).
    """
    _check_qkv(q, k, v, mask)
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = softmax(scores, dim=-1)
    attended = dropout(weights) if dropout is not None else weights
    return attended @ v, weights


class MultiHeadAttention(nn.Module):
    """Multi-head attention (batch-first): split into heads, attend, merge, project.

    Parameters mirror :class:`torch.nn.MultiheadAttention` with ``batch_first=True``;
    :meth:`load_from_torch` copies the weights of such a module so that both give
    the same output. ``forward`` returns the per-head weights ``(B, H, L_q, L_k)``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.ndim != 3 or t.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must have shape (batch, length, {self.d_model}), got {tuple(t.shape)}"
                )
        q, k, v = self._split(self.w_q(query)), self._split(self.w_k(key)), self._split(self.w_v(value))
        if mask is not None and mask.ndim == 2 and mask.shape[0] == query.shape[0] != mask.shape[1]:
            raise ValueError("a 2-D mask is (L_q, L_k); use padding_mask() for per-sequence masks")
        out, weights = scaled_dot_product_attention(q, k, v, mask, dropout=self.dropout)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.d_model)
        return self.w_o(out), weights

    @torch.no_grad()
    def load_from_torch(self, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` into this module."""
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(f"expected nn.MultiheadAttention, got {type(module).__name__}")
        if module.embed_dim != self.d_model or module.num_heads != self.n_heads:
            raise ValueError(
                f"size mismatch: torch module has embed_dim={module.embed_dim}, "
                f"num_heads={module.num_heads}; this one d_model={self.d_model}, n_heads={self.n_heads}"
            )
        if module.in_proj_weight is None:
            raise ValueError("torch module uses separate k/v sizes (kdim/vdim); not supported")
        w_q, w_k, w_v = module.in_proj_weight.chunk(3)
        for lin, w in ((self.w_q, w_q), (self.w_k, w_k), (self.w_v, w_v)):
            lin.weight.copy_(w)
        self.w_o.weight.copy_(module.out_proj.weight)
        if module.in_proj_bias is not None:
            b_q, b_k, b_v = module.in_proj_bias.chunk(3)
            for lin, b in ((self.w_q, b_q), (self.w_k, b_k), (self.w_v, b_v)):
                lin.bias.copy_(b)
            self.w_o.bias.copy_(module.out_proj.bias)
        return self

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A new module with the same sizes and weights as a torch one."""
        has_bias = module.in_proj_bias is not None
        new = cls(module.embed_dim, module.num_heads, dropout=module.dropout, bias=has_bias)
        return new.load_from_torch(module)
