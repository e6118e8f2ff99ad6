r"""A tiny CLIP: two towers trained to agree on pairs, with the symmetric InfoNCE loss.

CLIP (Radford et al., 2021) embeds the two sides of a pair, an image and its caption, with
two separate encoders ("towers") into one space, and trains them so that the true pairs
of a batch score higher than every mismatched pair. Here the pairs are a function's
signature (the *code* side) and its docstring summary (the *text* side):

* :class:`CodeTower`: characters -> embeddings + learned positions -> a small Transformer
  encoder (:class:`utils.transformer.Encoder`) -> masked mean -> linear projection;
* :class:`TextTower`: a trained linear projection of frozen, precomputed MiniLM embeddings;
* :class:`TinyClip`: both towers and the learned temperature, stored as
  :math:`\log(1/\tau)` and clamped at ``max_logit_scale`` as in CLIP.

With unit-length embeddings :math:`c_i, t_j` and :math:`s = 1/\tau`, the logits are
:math:`s\, c_i^\top t_j` and the loss is the mean of the two cross-entropies, code to text
(rows) and text to code (columns), with the diagonal as the targets (:func:`info_nce`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attention import padding_mask
from .transformer import Encoder, LearnedPositionalEncoding

__all__ = ["PAD", "UNKNOWN", "VOCAB_SIZE", "encode_chars", "ClipConfig", "CodeTower",
           "TextTower", "TinyClip", "info_nce", "similarity_ranks", "recall_at_k",
           "modality_gap"]

PAD, UNKNOWN = 0, 1
_FIRST, _LAST = 32, 126                      # printable ASCII, space to tilde
VOCAB_SIZE = 2 + _LAST - _FIRST + 1          #: padding, unknown, and 95 printable characters


def encode_chars(strings: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Character ids ``(B, max_length)`` (``int64``, ``PAD`` (0) after the end) and lengths ``(B,)``.

    Printable ASCII characters get ids 2 to 96, anything else ``UNKNOWN`` (1); strings are
    cut at ``max_length`` characters. An empty string raises ``ValueError``.
    """
    if isinstance(strings, str) or not isinstance(strings, Sequence | np.ndarray):
        raise TypeError(f"strings must be a list of strings, got {type(strings).__name__}")
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    strings = list(strings)
    if not strings:
        raise ValueError("strings is empty: pass at least one string")
    ids = torch.full((len(strings), max_length), PAD, dtype=torch.int64)
    lengths = torch.empty(len(strings), dtype=torch.int64)
    for i, s in enumerate(strings):
        if not isinstance(s, str):
            raise TypeError(f"strings must all be strings; item {i} is {type(s).__name__}")
        if not s:
            raise ValueError(f"item {i} is an empty string: every pair needs both sides")
        codes = [ord(ch) for ch in s[:max_length]]
        ids[i, :len(codes)] = torch.tensor(
            [c - _FIRST + 2 if _FIRST <= c <= _LAST else UNKNOWN for c in codes])
        lengths[i] = len(codes)
    return ids, lengths


@dataclass(frozen=True)
class ClipConfig:
    """Sizes of :class:`TinyClip`: a character Transformer for code, a linear map for text.

    ``init_temperature`` is CLIP's 0.07; the learned scale :math:`1/\\tau` is clamped at
    ``max_logit_scale`` (CLIP's 100).
    """

    max_length: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    text_dim: int = 384
    embed_dim: int = 64
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0

    def __post_init__(self):
        for name in ("max_length", "d_model", "n_heads", "n_layers", "d_ff", "text_dim", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0.0 < self.init_temperature and 1.0 / self.init_temperature <= self.max_logit_scale):
            raise ValueError("need 0 < init_temperature and 1 / init_temperature <= max_logit_scale, "
                             f"got {self.init_temperature} and {self.max_logit_scale}")

    def as_dict(self) -> dict:
        return asdict(self)


class CodeTower(nn.Module):
    """Character ids ``(B, L)`` and lengths ``(B,)`` -> unnormalised embeddings ``(B, embed_dim)``."""

    def __init__(self, config: ClipConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Embedding(VOCAB_SIZE, c.d_model, padding_idx=PAD)
        self.pos = LearnedPositionalEncoding(c.max_length, c.d_model)
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, dropout=c.dropout,
                               activation="gelu", norm_first=True)
        self.proj = nn.Linear(c.d_model, c.embed_dim)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or ids.shape[1] > self.config.max_length:
            raise ValueError(f"ids must be (B, L) with L <= {self.config.max_length}, "
                             f"got {tuple(ids.shape)}")
        if not torch.is_tensor(lengths) or lengths.shape != (ids.shape[0],):
            raise ValueError(f"lengths must be a tensor of shape ({ids.shape[0]},), one per row of "
                             f"ids, got {tuple(lengths.shape) if torch.is_tensor(lengths) else lengths!r}")
        if (lengths < 1).any() or (lengths > ids.shape[1]).any():
            raise ValueError(f"lengths must be in [1, {ids.shape[1]}] (an empty string has no "
                             f"embedding), got min {int(lengths.min())}, max {int(lengths.max())}")
        h = self.encoder(self.pos(self.embed(ids)), padding_mask(lengths, ids.shape[1]))
        positions = torch.arange(ids.shape[1], device=ids.device)
        keep = (positions[None, :] < lengths[:, None]).unsqueeze(-1).to(h.dtype)
        return self.proj((h * keep).sum(1) / keep.sum(1))


class TextTower(nn.Module):
    """Frozen sentence embeddings ``(B, text_dim)`` -> a trained linear map to ``(B, embed_dim)``."""

    def __init__(self, config: ClipConfig):
        super().__init__()
        self.proj = nn.Linear(config.text_dim, config.embed_dim)

    def forward(self, text_emb: torch.Tensor) -> torch.Tensor:
        return self.proj(text_emb)


class TinyClip(nn.Module):
    """Both towers and the learned temperature; ``encode_*`` return unit-length rows."""

    def __init__(self, config: ClipConfig = ClipConfig()):
        super().__init__()
        if not isinstance(config, ClipConfig):
            raise TypeError(f"config must be a ClipConfig, got {type(config).__name__}")
        self.config = config
        self.code = CodeTower(config)
        self.text = TextTower(config)
        #: log(1 / temperature), trained; see :attr:`logit_scale`
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    @property
    def logit_scale(self) -> torch.Tensor:
        """:math:`1/\\tau = \\exp(\\text{log\\_scale})`, clamped at ``max_logit_scale``."""
        return self.log_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def encode_code(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.code(ids, lengths), dim=-1)

    def encode_text(self, text_emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(text_emb), dim=-1)

    def loss(self, ids: torch.Tensor, lengths: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """The symmetric InfoNCE loss of one batch of pairs (row ``i`` of each side is a pair)."""
        return info_nce(self.encode_code(ids, lengths), self.encode_text(text_emb), self.logit_scale)


def _check_pair(a, b, names=("a", "b"), same_dtype: bool = True) -> None:
    for name, x in zip(names, (a, b), strict=True):
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise ValueError(f"{name} is empty: no pairs")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if same_dtype and a.dtype != b.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must have the same dtype, got {a.dtype} and "
                        f"{b.dtype}: convert one with .to(other.dtype)")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape (row i of each is "
                         f"a pair), got {tuple(a.shape)} and {tuple(b.shape)}")


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    r"""The symmetric InfoNCE loss of ``N`` pairs ``(a[i], b[i])``.

    ``logits = logit_scale * a @ b.T``; the loss is the mean of the cross-entropy of each
    row (``a[i]`` must pick ``b[i]`` among the ``N`` rows of ``b``) and of each column
    (``b[j]`` must pick ``a[j]``). The embeddings are used as given (normalise them first
    for cosine logits). It is ``log N`` when every logit is equal.
    """
    _check_pair(a, b)
    scale = torch.as_tensor(logit_scale, dtype=a.dtype)
    if scale.ndim != 0 or not torch.isfinite(scale) or scale <= 0:
        raise ValueError(f"logit_scale must be a positive finite scalar, got {logit_scale!r}")
    logits = scale.to(a.device) * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def similarity_ranks(queries: torch.Tensor | np.ndarray, candidates: torch.Tensor | np.ndarray
                     ) -> np.ndarray:
    """For each query ``i``, the rank (0 = best) of its own candidate ``i`` by dot product.

    Ties count against the query (a candidate that scores as high as the true one ranks
    before it), so constant embeddings cannot look good.
    """
    q, c = (torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
            for x in (queries, candidates))
    _check_pair(q, c, ("queries", "candidates"), same_dtype=False)
    scores = q.double() @ c.double().T
    true = scores.diagonal()[:, None]
    others = scores >= true
    others.fill_diagonal_(False)
    return others.sum(1).cpu().numpy()


def recall_at_k(queries: torch.Tensor | np.ndarray, candidates: torch.Tensor | np.ndarray,
                k: int) -> float:
    """The fraction of queries whose own candidate (same row) is among their ``k`` best by dot product.

    ``queries`` and ``candidates`` are ``(N, D)``; normalise them first for cosine
    similarity. Chance level is ``k / N``.
    """
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    n = len(queries)
    if k > n:
        raise ValueError(f"k={k} is larger than the number of candidates ({n})")
    return float((similarity_ranks(queries, candidates) < k).mean())


def modality_gap(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """The distance between the centroids of two clouds of unit vectors (Liang et al., 2022).

    Rows are normalised first; the clouds may differ in size but not in dimension.
    """
    a, b = (torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x) for x in (a, b))
    for name, x in (("a", a), ("b", b)):
        if not x.is_floating_point() or x.ndim != 2 or len(x) == 0:
            raise ValueError(f"{name} must be a non-empty floating-point (N, D) array, got "
                             f"{x.dtype} {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if (x.norm(dim=1) == 0).any():
            raise ValueError(f"{name} has all-zero rows, which have no direction on the sphere")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    gap = F.normalize(a.double(), dim=1).mean(0) - F.normalize(b.double(), dim=1).mean(0)
    return float(gap.norm())
