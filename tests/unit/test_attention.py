import pytest
import torch
import torch.nn.functional as F
from torch import nn

from utils import attention


def test_softmax_matches_torch_and_survives_large_scores():
    x = torch.randn(3, 4, 7) * 300
    assert torch.allclose(attention.softmax(x), torch.softmax(x, -1), atol=1e-6)
    assert torch.isfinite(attention.softmax(torch.tensor([[1e4, 0.0]]))).all()


def test_softmax_of_fully_masked_row_is_zero():
    out = attention.softmax(torch.full((2, 3), float("-inf")))
    assert torch.equal(out, torch.zeros(2, 3))


def test_softmax_rejects_integers():
    with pytest.raises(TypeError, match="floating-point"):
        attention.softmax(torch.ones(3, dtype=torch.long))


@pytest.mark.parametrize("batch", [(), (2,), (2, 3), (2, 3, 2)])
def test_sdpa_matches_torch_for_any_leading_dims(batch):
    q, k, v = torch.randn(*batch, 5, 8), torch.randn(*batch, 7, 8), torch.randn(*batch, 7, 3)
    out, w = attention.scaled_dot_product_attention(q, k, v)
    assert out.shape == (*batch, 5, 3) and w.shape == (*batch, 5, 7)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(*batch, 5))


def test_sdpa_boolean_and_float_masks_match_torch():
    q = torch.randn(2, 4, 6, 8)
    causal = attention.causal_mask(6)
    out, w = attention.scaled_dot_product_attention(q, q, q, causal)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, q, q, attn_mask=causal), atol=1e-6)
    assert torch.all(w.masked_select(~causal) == 0)
    additive = torch.randn(6, 6)
    out, _ = attention.scaled_dot_product_attention(q, q, q, additive)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, q, q, attn_mask=additive), atol=1e-6)


def test_sdpa_supports_double_backward():
    x = torch.randn(2, 5, 8, requires_grad=True)
    out, _ = attention.scaled_dot_product_attention(x, x, x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    g.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, 5, 8), (2, 5, 4), (2, 5, 8)), "feature size"),
        (((2, 5, 8), (2, 6, 8), (2, 5, 8)), "number of keys"),
        (((2, 5, 8), (3, 5, 8), (3, 5, 8)), "broadcast"),
        (((8,), (5, 8), (5, 8)), "shape"),
    ],
)
def test_sdpa_shape_errors_name_the_shapes(shapes, message):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=message):
        attention.scaled_dot_product_attention(q, k, v)


def test_sdpa_mask_errors():
    q = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="does not broadcast"):
        attention.scaled_dot_product_attention(q, q, q, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        attention.scaled_dot_product_attention(q, q, q, torch.ones(5, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="floating point"):
        attention.scaled_dot_product_attention(q.long(), q.long(), q.long())


def test_masks():
    assert torch.equal(attention.causal_mask(3).int(), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]))
    pad = attention.padding_mask([3, 1], max_length=4)
    assert pad.shape == (2, 1, 1, 4)
    assert pad[:, 0, 0].int().tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match="positive"):
        attention.causal_mask(0)
    with pytest.raises(ValueError, match="exceeds"):
        attention.padding_mask([5], max_length=3)
    with pytest.raises(ValueError, match="positive integers"):
        attention.padding_mask([0, 2])


@pytest.mark.parametrize("bias", [True, False])
def test_multihead_matches_torch(bias):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True).eval()
    ours = attention.MultiHeadAttention.from_torch(ref).eval()
    q, kv = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    keep = attention.padding_mask([7, 4, 2])
    out, w = ours(q, kv, kv, mask=keep)
    ref_out, ref_w = ref(q, kv, kv, key_padding_mask=~keep[:, 0, 0], average_attn_weights=False)
    assert (out - ref_out).abs().max() < 1e-6
    assert (w - ref_w).abs().max() < 1e-6


def test_multihead_errors():
    with pytest.raises(ValueError, match="divisible"):
        attention.MultiHeadAttention(10, 3)
    mha = attention.MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"\(batch, length, 16\)"):
        mha(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="size mismatch"):
        mha.load_from_torch(nn.MultiheadAttention(16, 2, batch_first=True))
    with pytest.raises(TypeError, match="MultiheadAttention"):
        mha.load_from_torch(nn.Linear(16, 16))
