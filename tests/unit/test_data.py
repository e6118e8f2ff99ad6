import numpy as np
import pytest
import torch

from utils import data


def test_digits():
    x, y = data.load_digits_images()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))


def test_digits_split_is_stratified_and_seeded():
    a = data.digits_split(0.2, seed=1)
    b = data.digits_split(0.2, seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    x_tr, x_te, y_tr, y_te = a
    assert len(x_tr) + len(x_te) == 1797
    assert np.allclose(np.bincount(y_te) / len(y_te), np.bincount(y_tr) / len(y_tr), atol=0.01)
    with pytest.raises(ValueError, match="test_size"):
        data.digits_split(1.5)


def test_trace():
    x, y = data.load_trace()
    assert x.shape == (200, 275) and set(np.unique(y)) == {0, 1, 2, 3}


def test_sliding_windows_numpy_and_torch_agree():
    s = np.arange(20.0).reshape(2, 10)
    w = data.sliding_windows(s, 4, 3)
    assert w.shape == (2, 3, 4) and w[0, 1].tolist() == [3, 4, 5, 6]
    wt = data.sliding_windows(torch.from_numpy(s), 4, 3)
    assert np.array_equal(wt.numpy(), w)
    assert data.sliding_windows(s, 5).shape == (2, 2, 5)
    with pytest.raises(ValueError, match="longer"):
        data.sliding_windows(s, 11)
    with pytest.raises(ValueError, match="positive"):
        data.sliding_windows(s, 0)
