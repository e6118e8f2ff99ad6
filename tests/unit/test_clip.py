"""Tests for utils.clip (the tiny CLIP) and utils.data.signature_summary_pairs."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils import clip, data


def _unit(n, d, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_info_nce_matches_explicit_loops():
    a, b = _unit(6, 5, 0), _unit(6, 5, 1)
    scale = 7.0
    rows = cols = 0.0
    for i in range(6):
        rows += -math.log(math.exp(scale * float(a[i] @ b[i]))
                          / sum(math.exp(scale * float(a[i] @ b[j])) for j in range(6)))
        cols += -math.log(math.exp(scale * float(b[i] @ a[i]))
                          / sum(math.exp(scale * float(b[i] @ a[j])) for j in range(6)))
    assert clip.info_nce(a, b, scale).item() == pytest.approx((rows + cols) / 12, rel=1e-5)


def test_info_nce_is_log_n_for_equal_logits_and_zero_for_one_pair():
    x = torch.ones(8, 3) / 3**0.5
    assert clip.info_nce(x, x, 10.0).item() == pytest.approx(math.log(8), rel=1e-6)
    assert clip.info_nce(_unit(1, 4), _unit(1, 4, 2), 3.0).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("a, b, scale, error", [
    (torch.zeros(3, 2), torch.zeros(4, 2), 1.0, "same shape"),
    (torch.zeros(3), torch.zeros(3), 1.0, "2-D"),
    (torch.zeros(0, 2), torch.zeros(0, 2), 1.0, "empty"),
    (torch.full((2, 2), float("nan")), torch.zeros(2, 2), 1.0, "NaN"),
    (torch.zeros(2, 2), torch.zeros(2, 2), -1.0, "positive"),
])
def test_info_nce_rejects_bad_input(a, b, scale, error):
    with pytest.raises(ValueError, match=error):
        clip.info_nce(a, b, scale)


def test_info_nce_rejects_integer_embeddings():
    with pytest.raises(TypeError, match="floating"):
        clip.info_nce(torch.ones(2, 2, dtype=torch.int64), torch.ones(2, 2), 1.0)
    with pytest.raises(TypeError, match="same dtype"):
        clip.info_nce(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.float64), 1.0)
    # ranking casts both sides to float64, so mixed dtypes are fine there
    assert clip.recall_at_k(torch.eye(3), torch.eye(3, dtype=torch.float64), 1) == 1.0


def test_recall_at_k_counts_ties_against_the_query():
    q = torch.eye(3)
    assert clip.recall_at_k(q, q, 1) == 1.0
    c = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert clip.recall_at_k(q, c, 1) == pytest.approx(1 / 3)
    assert clip.recall_at_k(q, c, 2) == pytest.approx(1 / 3)   # query 0 ties with candidate 2
    assert clip.recall_at_k(q, c, 3) == 1.0
    const = torch.ones(4, 2)
    assert clip.recall_at_k(const, const, 1) == 0.0      # every candidate ties with the true one
    assert clip.recall_at_k(np.eye(3), np.eye(3), 3) == 1.0  # NumPy input


def test_recall_at_k_rejects_bad_input():
    q = torch.eye(3)
    with pytest.raises(ValueError, match="larger than the number of candidates"):
        clip.recall_at_k(q, q, 4)
    with pytest.raises(ValueError, match="positive int"):
        clip.recall_at_k(q, q, 0)
    with pytest.raises(ValueError, match="same shape"):
        clip.recall_at_k(q, torch.eye(4)[:, :3], 1)
    with pytest.raises(ValueError, match="NaN"):
        clip.recall_at_k(torch.full((3, 3), float("nan")), q, 1)
    with pytest.raises(ValueError, match="2-D"):
        clip.recall_at_k(torch.ones(3), torch.ones(3), 1)


def test_modality_gap():
    a = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 3.0]])
    assert clip.modality_gap(a, b) == pytest.approx(2**0.5)
    assert clip.modality_gap(a, a) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same dimension"):
        clip.modality_gap(a, torch.ones(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        clip.modality_gap(a, torch.full((1, 2), float("nan")))
    with pytest.raises(ValueError, match="all-zero rows"):
        clip.modality_gap(a, torch.zeros(1, 2))


def test_encode_chars():
    ids, lengths = clip.encode_chars(["ab", "x(y)é"], max_length=4)
    assert ids.shape == (2, 4) and lengths.tolist() == [2, 4]
    assert ids[0, 2:].tolist() == [clip.PAD, clip.PAD] and int(ids.max()) < clip.VOCAB_SIZE
    assert clip.encode_chars(["é"], 2)[0][0, 0] == clip.UNKNOWN
    with pytest.raises(ValueError, match="empty string"):
        clip.encode_chars(["ok", ""], 4)
    with pytest.raises(TypeError, match="list of strings"):
        clip.encode_chars("abc", 4)
    with pytest.raises(ValueError, match="empty"):
        clip.encode_chars([], 4)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        clip.ClipConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="init_temperature"):
        clip.ClipConfig(init_temperature=0.001)
    with pytest.raises(TypeError, match="ClipConfig"):
        clip.TinyClip({"d_model": 8})


def test_tiny_clip_shapes_scale_and_gradients():
    cfg = clip.ClipConfig(max_length=12, d_model=16, n_heads=2, n_layers=1, d_ff=32, text_dim=10,
                          embed_dim=8, dropout=0.0)
    model = clip.TinyClip(cfg)
    assert model.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    ids, lengths = clip.encode_chars(["solve(a, b)", "fft(x)", "jv(v, z)"], cfg.max_length)
    c = model.encode_code(ids, lengths)
    t = model.encode_text(torch.randn(3, 10))
    assert c.shape == t.shape == (3, 8)
    assert torch.allclose(c.norm(dim=1), torch.ones(3), atol=1e-5)
    loss = model.loss(ids, lengths, torch.randn(3, 10))
    loss.backward()
    assert model.log_scale.grad is not None and model.code.embed.weight.grad is not None
    # trailing padding columns do not change a code embedding (eval mode: no dropout)
    model.eval()
    c = model.encode_code(ids, lengths)
    assert (lengths < ids.shape[1]).any()
    assert torch.allclose(model.encode_code(ids[:, :int(lengths.max())], lengths), c, atol=1e-5)
    with pytest.raises(ValueError, match="lengths must be in"):
        model.encode_code(ids, torch.tensor([3, 0, 2]))
    with pytest.raises(ValueError, match="shape"):
        model.encode_code(ids, lengths[:2])
    model.train()
    with torch.no_grad():
        model.log_scale.fill_(10.0)
    assert model.logit_scale.item() == pytest.approx(cfg.max_logit_scale, rel=1e-5)


def test_signature_summary_pairs():
    df = data.signature_summary_pairs()
    assert len(df) > 1000 and list(df.columns) == ["subpackage", "module", "name", "code", "text"]
    assert (df["code"].str.len() > 0).all() and (df["text"].str.len() > 0).all()
    assert all(c.startswith(n + "(") for n, c in zip(df["name"], df["code"], strict=True))
    # no summary keeps its function's name as a token ("name.", "`name`", "name's" included)
    leaks = [n for n, t in zip(df["name"], df["text"], strict=True)
             if n.lower() in re.findall(r"[a-z0-9_]+", t.lower())]
    assert not leaks, leaks[:5]
    assert 0 < df.attrs["masked"] < len(df) and not df["text"].duplicated().any()
    assert df.attrs["duplicate_text"] and len(df.attrs["no_signature"]) < 10
    # no NumPy boilerplate and no memory addresses: the same strings in every process
    assert not df["code"].str.contains(r"out1|\[,|\bat 0x|/").any()
    assert df.loc[df["name"] == "boxcox1p", "code"].item() == "boxcox1p(x, lmbda)"   # from the docstring
    assert df.loc[df["name"] == "airy", "code"].item() == "airy(z)"      # four outputs, one input
    assert df.loc[df["name"] == "bdtrik", "code"].item() == "bdtrik(y, n, p)"
    assert df.loc[df["name"] == "logm", "code"].item() == "logm(A, disp=...)"   # a sentinel default
    assert len(df.attrs["generic_args"]) < 5


def test_signature_summary_pairs_rejects_a_blank_mask():
    with pytest.raises(ValueError, match="mask"):
        data.signature_summary_pairs(mask=" ")


_SENTINEL = object()


def test_code_signature_is_deterministic_and_reads_ufunc_call_lines():
    import scipy.special as sc

    def f(a, flag=_SENTINEL, key=pytest.approx):
        return a

    assert data._code_signature(f, "f") == "f(a, flag=..., key=approx)"
    assert data._code_signature(sc.ellipj, "ellipj") == "ellipj(u, m)"
    assert data._code_signature(sc.jn, "jn") == "jn(v, z)"        # an alias documented as jv
    assert data._code_signature(42, "x") is None
