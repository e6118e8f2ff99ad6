"""Data sets that ship with installed packages, so nothing is downloaded at run time.

* sklearn's 8x8 handwritten digits (1,797 images, 10 classes);
* tslearn's Trace time series (200 series of length 275, 4 classes);
* later chapters add the scipy docstring corpus here.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["load_digits_images", "digits_split", "load_trace", "sliding_windows"]


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits as ``float32`` images ``(1797, 8, 8)`` in ``[0, 1]`` and ``int64`` labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_split(test_size: float = 0.25, seed: int = 0):
    """A stratified train/test split of the digits: ``(x_train, x_test, y_train, y_test)``."""
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    from sklearn.model_selection import train_test_split

    x, y = load_digits_images()
    return train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)


def load_trace() -> tuple[np.ndarray, np.ndarray]:
    """tslearn's Trace data set (train and test joined): ``(200, 275)`` float32 series, labels 0-3."""
    from tslearn.datasets import CachedDatasets

    x_tr, y_tr, x_te, y_te = CachedDatasets().load_dataset("Trace")
    x = np.concatenate([x_tr, x_te])[..., 0].astype(np.float32)
    y = np.concatenate([y_tr, y_te]).astype(np.int64) - 1
    return x, y


def sliding_windows(series: np.ndarray | torch.Tensor, window: int, stride: int | None = None):
    """Cut the last axis into windows: ``(..., T)`` to ``(..., n_windows, window)``.

    Each window becomes one token, the time-series analogue of an image patch.
    A tail shorter than ``window`` is dropped.
    """
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    length = series.shape[-1]
    if window > length:
        raise ValueError(f"window={window} is longer than the series ({length})")
    if isinstance(series, np.ndarray):
        view = np.lib.stride_tricks.sliding_window_view(series, window, axis=-1)
        return view[..., ::stride, :]
    return series.unfold(-1, window, stride)
