"""Tests for utils.pretrained: offline MiniLM, mean pooling and sentence embeddings."""

import numpy as np
import pytest
import torch

from utils import pretrained

SENTENCES = [
    "Compute the determinant of a matrix.",
    "Solve a linear system of equations.",
    "Bessel function of the first kind.",
    "A much longer sentence, so that the batch needs padding for the shorter ones above it.",
]


def test_mean_pool_ignores_padding():
    h = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = pretrained.mean_pool(h, mask)
    torch.testing.assert_close(out[0], h[0, :2].mean(0))
    torch.testing.assert_close(out[1], h[1].mean(0))


def test_mean_pool_all_padding_gives_zeros_not_nan():
    out = pretrained.mean_pool(torch.ones(1, 3, 2), torch.zeros(1, 3))
    assert torch.equal(out, torch.zeros(1, 2))


@pytest.mark.parametrize("h, mask, match", [
    (torch.zeros(2, 3), torch.ones(2, 3), "B, L, D"),
    (torch.zeros(2, 3, 4), torch.ones(2, 4), "does not match"),
])
def test_mean_pool_bad_shapes(h, mask, match):
    with pytest.raises(ValueError, match=match):
        pretrained.mean_pool(h, mask)


def test_embeddings_shape_norm_and_order():
    e = pretrained.embed_sentences(SENTENCES, batch_size=2)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # the order of the inputs is kept, whatever the batching
    single = pretrained.embed_sentences([SENTENCES[2]])
    np.testing.assert_allclose(e[2], single[0], atol=1e-5)
    # related sentences are closer than unrelated ones
    assert e[0] @ e[1] > e[0] @ e[2]


def test_matches_sentence_transformers():
    ours = pretrained.embed_sentences(SENTENCES)
    ref = pretrained.load_reference().encode(SENTENCES, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_unnormalised_embeddings_are_the_raw_mean():
    e = pretrained.embed_sentences(SENTENCES[:1], normalize=False)
    assert not np.isclose(np.linalg.norm(e), 1.0)


def test_model_is_loaded_once():
    assert pretrained.load_minilm() is pretrained.load_minilm()


def test_cached_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path))
    first = pretrained.cached_embeddings(SENTENCES[:2])
    assert len(list(tmp_path.glob("minilm-sentences-*.pt"))) == 1
    np.testing.assert_allclose(pretrained.cached_embeddings(SENTENCES[:2]), first)
    pretrained.cached_embeddings(SENTENCES[1:3])  # other texts, another entry
    assert len(list(tmp_path.glob("minilm-sentences-*.pt"))) == 2


@pytest.mark.parametrize("texts, exc, match", [
    ([], ValueError, "empty"),
    ("one string", TypeError, "not one string"),
    (["ok", 3], TypeError, "item 1 is int"),
    ([None], TypeError, "item 0 is NoneType"),
    (42, TypeError, "list of strings"),
])
def test_bad_texts(texts, exc, match):
    with pytest.raises(exc, match=match):
        pretrained.embed_sentences(texts)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        pretrained.embed_sentences(["a"], batch_size=0)
