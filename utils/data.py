"""Data sets that ship with installed packages, so nothing is downloaded at run time.

* sklearn's 8x8 handwritten digits (1,797 images, 10 classes);
* tslearn's Trace time series (200 series of length 275, 4 classes);
* the one-line summaries of scipy's public functions, labelled by subpackage.
"""

from __future__ import annotations

import functools
import inspect
import re

import numpy as np
import torch

__all__ = ["check_images", "load_digits_images", "digits_split", "load_trace", "sliding_windows",
           "docstring_summary", "docstring_corpus_frame", "load_docstring_corpus"]


def check_images(images, name: str = "images", *, size: int | None = None,
                 unit_range: bool = False, numpy_ok: bool = False) -> torch.Tensor:
    """The one image validator: a non-empty, finite, floating-point ``(B, H, W)`` tensor.

    Every function that takes images calls this, so one mistake always raises the
    same error:

    * not a tensor (or, with ``numpy_ok``, not a NumPy array): ``TypeError``;
    * not floating point: ``TypeError``;
    * not 3-D ``(B, H, W)``, or not ``size`` x ``size`` when ``size`` is given: ``ValueError``;
    * an empty batch: ``ValueError``;
    * NaN or infinite values: ``ValueError``;
    * with ``unit_range``, values outside ``[0, 1]`` (beyond 1e-4): ``ValueError``.

    Returns the images as a tensor (a NumPy array is wrapped, not copied).
    """
    if numpy_ok and isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not torch.is_tensor(images):
        wanted = "a torch.Tensor or NumPy array" if numpy_ok else "a torch.Tensor"
        raise TypeError(f"{name} must be {wanted} of shape (B, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be floating point (values in [0, 1]), got dtype {images.dtype}")
    if images.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W), got {tuple(images.shape)}")
    if size is not None and tuple(images.shape[1:]) != (size, size):
        raise ValueError(f"{name} must have shape (B, {size}, {size}), got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty (batch size 0)")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if unit_range:
        lo, hi = float(images.min()), float(images.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                             "rescale (e.g. (x + 1) / 2 for tanh outputs) or clamp first")
    return images


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


# --- the scipy docstring corpus -------------------------------------------------------------

# Public namespaces, grouped by top-level subpackage (the label). Functions that live in a
# submodule (``scipy.sparse.linalg.splu``) are labelled by their subpackage (``sparse``).
# Left out: the legacy ``fftpack`` (it repeats ``fft``), the auto-generated low-level
# ``linalg.blas``/``linalg.lapack`` wrappers, ``odr`` (deprecated in SciPy 1.17) and the
# deprecated private namespaces.
_DOC_NAMESPACES = (
    "cluster.hierarchy", "cluster.vq", "constants", "datasets", "differentiate", "fft",
    "integrate", "interpolate", "io", "io.arff", "io.matlab", "io.wavfile", "linalg",
    "linalg.interpolative", "ndimage", "optimize", "optimize.elementwise", "signal",
    "signal.windows", "sparse", "sparse.csgraph", "sparse.linalg", "spatial",
    "spatial.distance", "special", "stats", "stats.contingency", "stats.mstats", "stats.qmc",
    "stats.sampling",
)
_SIGNATURE = re.compile(r"^[A-Za-z_][\w.]*\(")


def docstring_summary(doc: str | None) -> str | None:
    """The one-line summary of a docstring, or ``None`` if it has none.

    The summary is the first paragraph, with its lines joined. Leading paragraphs
    that are a call signature (ufuncs and Cython functions start with one, e.g.
    ``jv(v, z, out=None)``) or an reST directive (``.. deprecated::``) are skipped.
    A docstring that opens with a numpydoc section (``Parameters`` underlined) has
    no summary.
    """
    if doc is None:
        return None
    if not isinstance(doc, str):
        raise TypeError(f"doc must be a string or None, got {type(doc).__name__}")
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines = para.strip().splitlines()
        if len(lines) > 1 and set(lines[1].strip()) <= set("-="):
            return None  # a numpydoc section ("Parameters\n----------") before any summary
        text = " ".join(para.split())
        if not text or _SIGNATURE.match(text) or text.startswith(".."):
            continue
        return text
    return None


@functools.lru_cache(maxsize=1)
def _docstring_records() -> tuple[tuple[str, str, str, str], ...]:
    """``(subpackage, module, name, summary)`` for every public scipy function with a summary."""
    import importlib

    records = []
    for ns in _DOC_NAMESPACES:
        module = importlib.import_module(f"scipy.{ns}")
        names = getattr(module, "__all__", None) or [n for n in dir(module) if n[0] != "_"]
        for name in sorted(names):
            obj = getattr(module, name, None)
            if obj is None or inspect.isclass(obj) or inspect.ismodule(obj):
                continue
            if not (inspect.isroutine(obj) or isinstance(obj, np.ufunc)):
                continue  # e.g. the distribution objects of scipy.stats
            summary = docstring_summary(obj.__doc__)
            if summary:
                records.append((ns.split(".")[0], f"scipy.{ns}", name, summary))
    return tuple(records)


def docstring_corpus_frame(min_count: int = 20):
    """The docstring corpus as a pandas DataFrame, with a report of what was dropped.

    Columns: ``subpackage`` (the label), ``module``, ``name``, ``summary``. Rows are
    sorted by subpackage, module and name. ``frame.attrs["dropped"]`` counts the
    rows removed by each rule, applied in this order:

    1. ``cross_label_duplicates``: a summary (compared case- and space-insensitively)
       found in two or more subpackages, e.g. ``linalg.expm`` and
       ``sparse.linalg.expm``. Its true label is ambiguous, so every copy is dropped.
    2. ``within_label_duplicates``: the same summary twice in one subpackage (a function
       exported by two namespaces); the first copy is kept.
    3. ``small_classes``: subpackages with fewer than ``min_count`` summaries left.

    ``frame.attrs["cross_label_names"]`` lists the functions dropped by rule 1.
    """
    import pandas as pd

    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    df = pd.DataFrame(list(_docstring_records()),
                      columns=["subpackage", "module", "name", "summary"])
    key = df["summary"].str.lower().str.split().str.join(" ")
    n_labels = df.assign(key=key).groupby("key")["subpackage"].transform("nunique")
    cross = n_labels > 1
    cross_rows = df[cross]
    df, key = df[~cross], key[~cross]
    dup = df.assign(key=key).duplicated(["subpackage", "key"], keep="first")
    df = df[~dup]
    counts = df["subpackage"].value_counts()
    small = df["subpackage"].map(counts) < min_count
    df = df[~small].sort_values(["subpackage", "module", "name"]).reset_index(drop=True)
    df.attrs["cross_label_names"] = sorted(
        (f"{m}.{n}" for m, n in zip(cross_rows["module"], cross_rows["name"], strict=True)))
    df.attrs["dropped"] = {
        "cross_label_duplicates": int(cross.sum()),
        "within_label_duplicates": int(dup.sum()),
        "small_classes": int(small.sum()),
        "small_class_names": sorted(counts[counts < min_count].index.tolist()),
    }
    return df


def load_docstring_corpus(min_count: int = 20) -> tuple[list[str], np.ndarray, list[str]]:
    """One-line summaries of scipy's public functions, labelled by subpackage.

    Returns ``(texts, labels, label_names)``: the summaries, ``int64`` labels
    indexing ``label_names`` (sorted subpackage names). The order is deterministic.
    See :func:`docstring_corpus_frame` for the cleaning rules (ufunc signatures
    skipped, duplicates removed, classes under ``min_count`` dropped).
    """
    df = docstring_corpus_frame(min_count)
    label_names = sorted(df["subpackage"].unique())
    labels = df["subpackage"].map({n: i for i, n in enumerate(label_names)}).to_numpy(np.int64)
    return df["summary"].tolist(), labels, label_names
