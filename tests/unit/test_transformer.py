import math

import pytest
import torch
from torch import nn

from utils import attention, transformer


def test_sinusoidal_encoding_values():
    pe = transformer.sinusoidal_positional_encoding(50, 16)
    p, i = 7, 3
    assert pe.shape == (50, 16)
    assert math.isclose(pe[p, 2 * i].item(), math.sin(p / 10000 ** (2 * i / 16)), abs_tol=1e-6)
    assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(p / 10000 ** (2 * i / 16)), abs_tol=1e-6)


@pytest.mark.parametrize(("n", "d"), [(0, 4), (4, 3), (4, 0)])
def test_sinusoidal_encoding_errors(n, d):
    with pytest.raises(ValueError):
        transformer.sinusoidal_positional_encoding(n, d)


def test_learned_encoding_and_length_error():
    enc = transformer.LearnedPositionalEncoding(4, 8)
    x = torch.zeros(2, 3, 8)
    assert torch.equal(enc(x), enc.weight[:3].expand(2, 3, 8))
    with pytest.raises(ValueError, match="exceeds"):
        enc(torch.zeros(1, 5, 8))


def test_feedforward_activation_error():
    with pytest.raises(ValueError, match="activation"):
        transformer.FeedForward(8, 16, activation="tanh")


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_block_and_stack_match_torch(norm_first, activation):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True,
                                       norm_first=norm_first, activation=activation)
    stack = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16) if norm_first else None,
                                  enable_nested_tensor=False).eval()
    ours = transformer.Encoder(2, 16, 4, 32, activation=activation, norm_first=norm_first)
    ours.load_from_torch(stack).eval()
    x = torch.randn(3, 6, 16)
    assert (ours(x) - stack(x)).abs().max() < 1e-6
    keep = attention.padding_mask([6, 4, 2])
    diff = (ours(x, keep) - stack(x, src_key_padding_mask=~keep[:, 0, 0]))[keep[:, 0, 0]]
    assert diff.abs().max() < 1e-6
    block = transformer.EncoderBlock(16, 4, 32, activation=activation, norm_first=norm_first)
    block.load_from_torch(stack.layers[0]).eval()
    assert (block(x) - stack.layers[0](x)).abs().max() < 1e-6
    assert len(ours.attention_maps()) == 2 and ours.attention_maps()[0].shape == (3, 4, 6, 6)


def test_load_errors():
    block = transformer.EncoderBlock(16, 4, 32, norm_first=True)
    with pytest.raises(ValueError, match="norm placement"):
        block.load_from_torch(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True))
    with pytest.raises(TypeError):
        block.load_from_torch(nn.Linear(2, 2))
    enc = transformer.Encoder(2, 16, 4, 32)
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    with pytest.raises(ValueError, match="depth"):
        enc.load_from_torch(nn.TransformerEncoder(layer, 3, enable_nested_tensor=False))
    with pytest.raises(ValueError, match="at least 1"):
        transformer.Encoder(0, 16, 4, 32)


def test_patches_round_trip_and_layout():
    img = torch.arange(64.0).reshape(1, 8, 8)
    patches = transformer.image_to_patches(img, 2)
    assert patches.shape == (1, 16, 4)
    assert patches[0, 0].tolist() == [0, 1, 8, 9] and patches[0, 1].tolist() == [2, 3, 10, 11]
    assert torch.equal(transformer.patches_to_image(patches, 8), img)
    with pytest.raises(ValueError, match="divisible"):
        transformer.image_to_patches(torch.zeros(1, 8, 8), 3)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        transformer.image_to_patches(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match="tile"):
        transformer.patches_to_image(torch.zeros(1, 15, 4), 8)


def test_patch_encoder_shapes_mask_and_errors():
    enc = transformer.PatchEncoder(transformer.PatchEncoderConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32))
    x = torch.rand(3, 8, 8)
    assert enc(x).shape == (3, 17, 16) and enc.features(x).shape == (3, 16)
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[:, :4] = True
    assert enc(x, token_mask=mask).shape == (3, 17, 16)
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        enc(torch.rand(3, 7, 7))
    with pytest.raises(ValueError, match="token_mask"):
        enc(x, token_mask=torch.zeros(3, 16))
