r"""The Transformer encoder, written out: positional encodings, the block and the stack.

:class:`EncoderBlock` matches :class:`torch.nn.TransformerEncoderLayer`
(``batch_first=True``) in both norm placements, and :class:`Encoder` matches
:class:`torch.nn.TransformerEncoder`, once weights are copied with ``load_from_torch``.

Post-norm (the 2017 original): ``x = LN(x + MHA(x)); x = LN(x + FFN(x))``.
Pre-norm (easier to train deep): ``x = x + MHA(LN(x)); x = x + FFN(LN(x))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .attention import MultiHeadAttention

__all__ = [
    "sinusoidal_positional_encoding",
    "LearnedPositionalEncoding",
    "FeedForward",
    "EncoderBlock",
    "Encoder",
    "image_to_patches",
    "patches_to_image",
    "PatchEncoderConfig",
    "PatchEncoder",
]


def sinusoidal_positional_encoding(n_positions: int, d_model: int) -> torch.Tensor:
    r"""The fixed encoding of Vaswani et al.: :math:`PE_{p,2i}=\sin(p/10000^{2i/d})`,
    :math:`PE_{p,2i+1}=\cos(p/10000^{2i/d})`. Returns ``(n_positions, d_model)``."""
    if not isinstance(n_positions, int) or n_positions < 1:
        raise ValueError(f"n_positions must be a positive int, got {n_positions!r}")
    if not isinstance(d_model, int) or d_model < 2 or d_model % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(n_positions, d_model)
    pe[:, 0::2] = torch.sin(position * inv_freq)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe


class LearnedPositionalEncoding(nn.Module):
    """One trainable vector per position, added to the token embeddings."""

    def __init__(self, n_positions: int, d_model: int, init_std: float = 0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_positions, d_model) * init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]
        if n > self.weight.shape[0]:
            raise ValueError(f"sequence length {n} exceeds the {self.weight.shape[0]} learned positions")
        return x + self.weight[:n]


class FeedForward(nn.Module):
    """Position-wise MLP: ``Linear(d, d_ff) -> activation -> dropout -> Linear(d_ff, d)``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.activation, self.dropout = acts[activation](), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


class EncoderBlock(nn.Module):
    """Self-attention and feed-forward sublayers, each with a residual and a LayerNorm."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first
        self.last_attention: torch.Tensor | None = None

    def _sa(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out, weights = self.attn(x, mask=mask)
        self.last_attention = weights.detach()
        return self.drop1(out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x), mask)
            return x + self.drop2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._sa(x, mask))
        return self.norm2(x + self.drop2(self.ff(x)))

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> EncoderBlock:
        """Copy weights from ``nn.TransformerEncoderLayer`` (norm placement must agree)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"expected nn.TransformerEncoderLayer, got {type(layer).__name__}")
        if layer.norm_first != self.norm_first:
            raise ValueError(
                f"norm placement differs: torch layer norm_first={layer.norm_first}, "
                f"this block norm_first={self.norm_first}"
            )
        self.attn.load_from_torch(layer.self_attn)
        for mine, theirs in (
            (self.ff.linear1, layer.linear1),
            (self.ff.linear2, layer.linear2),
            (self.norm1, layer.norm1),
            (self.norm2, layer.norm2),
        ):
            if mine.weight.shape != theirs.weight.shape:
                raise ValueError(
                    f"shape mismatch: {tuple(mine.weight.shape)} vs {tuple(theirs.weight.shape)}"
                )
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        return self


class Encoder(nn.Module):
    """A stack of :class:`EncoderBlock` with an optional final LayerNorm (used with pre-norm)."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, *,
                 dropout: float = 0.0, activation: str = "relu", norm_first: bool = False,
                 final_norm: bool | None = None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.layers = nn.ModuleList(
            EncoderBlock(d_model, n_heads, d_ff, dropout, activation, norm_first)
            for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x) if self.norm is not None else x

    def attention_maps(self) -> list[torch.Tensor]:
        """Per-layer attention weights ``(B, H, L, L)`` from the last forward pass."""
        return [layer.last_attention for layer in self.layers]

    @torch.no_grad()
    def load_from_torch(self, encoder: nn.TransformerEncoder) -> Encoder:
        """Copy weights from ``nn.TransformerEncoder`` (same depth and final-norm choice)."""
        if len(encoder.layers) != len(self.layers):
            raise ValueError(f"depth differs: torch {len(encoder.layers)}, this {len(self.layers)}")
        if (encoder.norm is None) != (self.norm is None):
            raise ValueError("one encoder has a final LayerNorm and the other does not")
        for mine, theirs in zip(self.layers, encoder.layers, strict=True):
            mine.load_from_torch(theirs)
        if self.norm is not None:
            self.norm.weight.copy_(encoder.norm.weight)
            self.norm.bias.copy_(encoder.norm.bias)
        return self


def image_to_patches(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, H, W)`` images to ``(B, (H/p)*(W/p), p*p)`` patch tokens, row by row."""
    if not torch.is_tensor(images) or images.ndim != 3:
        raise ValueError(f"images must be a (B, H, W) tensor, got {getattr(images, 'shape', type(images))}")
    b, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size {h}x{w} is not divisible by patch_size={patch_size}")
    p = patch_size
    x = images.reshape(b, h // p, p, w // p, p).permute(0, 1, 3, 2, 4)
    return x.reshape(b, (h // p) * (w // p), p * p)


def patches_to_image(patches: torch.Tensor, image_size: int) -> torch.Tensor:
    """Inverse of :func:`image_to_patches` for square images."""
    if patches.ndim != 3:
        raise ValueError(f"patches must be (B, N, p*p), got {tuple(patches.shape)}")
    b, n, pp = patches.shape
    p, g = math.isqrt(pp), math.isqrt(n)
    if p * p != pp or g * g != n or g * p != image_size:
        raise ValueError(f"{n} patches of {pp} pixels do not tile a {image_size}x{image_size} image")
    x = patches.reshape(b, g, g, p, p).permute(0, 1, 3, 2, 4)
    return x.reshape(b, image_size, image_size)


@dataclass(frozen=True)
class PatchEncoderConfig:
    """Sizes of a small ViT-style encoder for square greyscale images."""

    image_size: int = 8
    patch_size: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 128
    dropout: float = 0.0
    activation: str = "gelu"
    norm_first: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class PatchEncoder(nn.Module):
    """Images -> patch tokens + [CLS] + learned positions -> Transformer encoder.

    ``forward`` returns all token states ``(B, 1 + N, d_model)``, with [CLS] first;
    ``features`` returns the [CLS] state. ``token_mask`` (``(B, N)`` bool, True =
    hidden) replaces the hidden patches with a learned [MASK] embedding.
    """

    def __init__(self, config: PatchEncoderConfig = PatchEncoderConfig()):
        super().__init__()
        c = self.config = config
        self.n_patches = (c.image_size // c.patch_size) ** 2
        self.embed = nn.Linear(c.patch_size**2, c.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos = LearnedPositionalEncoding(1 + self.n_patches, c.d_model)
        self.encoder = Encoder(c.n_layers, c.d_model, c.n_heads, c.d_ff, dropout=c.dropout,
                               activation=c.activation, norm_first=c.norm_first)

    def forward(self, images: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if images.ndim != 3 or images.shape[1:] != (c.image_size, c.image_size):
            raise ValueError(
                f"images must be (B, {c.image_size}, {c.image_size}), got {tuple(images.shape)}"
            )
        tokens = self.embed(image_to_patches(images, c.patch_size))
        if token_mask is not None:
            if token_mask.shape != tokens.shape[:2] or token_mask.dtype != torch.bool:
                raise ValueError(f"token_mask must be bool {tuple(tokens.shape[:2])}, got "
                                 f"{token_mask.dtype} {tuple(token_mask.shape)}")
            tokens = torch.where(token_mask[..., None], self.mask_token.to(tokens.dtype), tokens)
        x = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.encoder(self.pos(x))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The [CLS] token's final state, ``(B, d_model)``."""
        return self(images)[:, 0]
