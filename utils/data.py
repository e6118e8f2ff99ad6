"""Data sets that ship with installed packages, so nothing is downloaded at run time.

* sklearn's 8x8 handwritten digits (1,797 images, 10 classes);
* tslearn's Trace time series (200 series of length 275, 4 classes);
* the one-line summaries of scipy's public functions, labelled by subpackage;
* UCR Anomaly Archive series 135, read from aeon's wheel (fetched by ``make venv``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["check_images", "load_digits_images", "digits_split", "load_trace", "sliding_windows",
           "signature_summary_pairs",
           "docstring_summary", "docstring_corpus_frame", "load_docstring_corpus",
           "aeon_wheel_path", "load_aeon_csv", "load_ucr_anomaly_135"]


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


# --- anomaly benchmarks shipped inside aeon's wheel -----------------------------------------

#: aeon's wheel holds the benchmarks as CSV files; it is fetched by ``make venv``, read as a
#: zip archive and never installed or imported (aeon pins older numba and pandas).
AEON_WHEEL = "aeon-1.6.0-py3-none-any.whl"
AEON_WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
_UCR_135 = "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16"


def aeon_wheel_path() -> Path:
    """The verified path of aeon's wheel: in ``$TFUL_DATA_DIR``, else ``sys.prefix/share/tful-data``.

    Raises ``FileNotFoundError`` naming the ``pip download`` command that fetches it,
    and ``ValueError`` when the file's sha256 is not the pinned one.
    """
    env = os.environ.get("TFUL_DATA_DIR", "").strip()
    folder = Path(env) if env else Path(sys.prefix) / "share" / "tful-data"
    path = folder / AEON_WHEEL
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; fetch it (6.4 MB, once) with\n"
            f"    python -m pip download --no-deps --only-binary=:all: aeon==1.6.0 -d {folder}\n"
            "(make venv does this; set $TFUL_DATA_DIR to use another folder)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != AEON_WHEEL_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, expected {AEON_WHEEL_SHA256}; "
                         "delete it and download it again")
    return path


def load_aeon_csv(member: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One CSV under ``aeon/datasets/data/`` in aeon's wheel, read from the zip.

    The files follow TimeEval's layout: a timestamp, one column per channel, and a
    last column ``is_anomaly`` (0 or 1). Returns ``(values, labels, channels)``:
    float64 ``(T, C)`` values, int64 ``(T,)`` labels and the channel names.
    """
    with zipfile.ZipFile(aeon_wheel_path()) as wheel:
        name = f"aeon/datasets/data/{member}"
        try:
            text = wheel.read(name).decode()
        except KeyError:
            raise ValueError(f"{member!r} is not in {AEON_WHEEL} (looked for {name})") from None
    header, *rows = text.strip().splitlines()
    columns = header.split(",")
    if columns[-1] != "is_anomaly" or len(columns) < 3:
        raise ValueError(f"{member}: expected timestamp, channels..., is_anomaly; got {columns}")
    table = np.array([row.split(",")[1:] for row in rows], dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64), columns[1:-1]


def load_ucr_anomaly_135() -> tuple[np.ndarray, np.ndarray, int]:
    """UCR Anomaly Archive series 135 (InternalBleeding16, KDD Cup 2021), from aeon's wheel.

    Returns ``(series, labels, train_end)``: the whole float64 series (7,501 points),
    its 0/1 labels (one anomaly, points 4,187 to 4,198) and the length of the
    anomaly-free training prefix (1,200; the archive's file name carries it). The
    wheel's TEST file is the whole series; its TRAIN file is the prefix, and the
    two are checked to agree.
    """
    x_train, y_train, _ = load_aeon_csv(f"{_UCR_135}_TRAIN.csv")
    x, y, _ = load_aeon_csv(f"{_UCR_135}_TEST.csv")
    train_end = len(x_train)
    if not (np.array_equal(x[:train_end], x_train) and y_train.sum() == 0 and y.sum() > 0):
        raise ValueError("the TRAIN file should be the anomaly-free prefix of the TEST file")
    return x[:, 0], y, train_end


_UFUNC_KEYWORDS = ("out", "where", "casting", "order", "dtype", "subok", "signature")


def _code_signature(obj, name: str) -> str | None:
    """``name(arg, arg=default, ...)``: a function's name and parameters, or ``None`` if unknown.

    A ufunc's ``inspect.signature`` and the first line of its docstring are NumPy's generic
    ``name(x1, x2, /, out=None, *, where=True, ...)``, so its parameters are read from the
    docstring's own call line (``jv(v, z, out=None)``) when there is one that names exactly
    ``nin`` inputs; otherwise they are ``x1, x2, ...``. NumPy's keywords (``out``, ``where``,
    ``casting``...) are dropped. Default values whose repr holds a memory address (sentinel
    objects such as ``<object object at 0x7f...>``) become ``...`` and functions their name,
    so the result is the same in every process.
    """
    if isinstance(obj, np.ufunc):
        args = [f"x{i + 1}" for i in range(obj.nin)]
        for line in (obj.__doc__ or "").strip().splitlines()[:8]:
            call = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", line)
            if not call or call[1] not in (name, obj.__name__) or re.search(r"[/\[\]*]", call[2]):
                continue                                   # not a call line, or NumPy's generic one
            found = [a.strip() for a in call[2].split(",")]
            found = [a for a in found if a and a.split("=")[0].strip() not in _UFUNC_KEYWORDS]
            if len(found) == obj.nin:
                args = found
                break
        return f"{name}({', '.join(args)})"
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    text = f"{name}({', '.join(str(p) for p in params)})"
    text = re.sub(r"<function ([\w.<>]+) at 0x[0-9a-fA-F]+>", r"\1", text)
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "...", text)


def signature_summary_pairs(min_count: int = 20, mask: str = "<name>"):
    """Pairs of two views of each scipy function: its signature (code) and its summary (text).

    Built on :func:`docstring_corpus_frame` (same functions, same order), as a DataFrame with
    columns ``subpackage`` (a label, for evaluation only), ``module``, ``name``, ``code``
    (``name(arg, arg=default, ...)``) and ``text`` (the summary). No pair is made from a label.

    A summary that spells out the function's name (``probplot``: "... a probability plot")
    would make matching trivial, so every whole-word, case-insensitive occurrence of the name
    in the summary is replaced by ``mask``. Only exact occurrences are masked: inflections
    ("inconsistency" for ``inconsistent``) remain. Functions without a readable signature are
    dropped, and so is every pair whose masked summary repeats an earlier one ("Return a
    <name> window."), since its text cannot single out its code. ``frame.attrs`` reports
    ``"masked"`` (kept summaries that were changed), ``"no_signature"`` and ``"duplicate_text"``
    (the functions dropped, as ``module.name``) and ``"generic_args"`` (kept ufuncs whose
    argument names could not be read, written ``x1, x2, ...``).
    """
    import importlib

    if not isinstance(mask, str) or not mask.strip():
        raise ValueError(f"mask must be a non-empty string, got {mask!r}")
    df = docstring_corpus_frame(min_count)
    codes, texts, generic = [], [], []
    for module, name, summary in zip(df["module"], df["name"], df["summary"], strict=True):
        obj = getattr(importlib.import_module(module), name)
        code = _code_signature(obj, name)
        if isinstance(obj, np.ufunc) and code == f"{name}({', '.join(f'x{i + 1}' for i in range(obj.nin))})":
            generic.append(name)
        codes.append(code)
        texts.append(re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", mask, summary, flags=re.I))
    df = df.assign(code=codes, text=texts)

    def qualified(rows):
        return sorted(f"{m}.{n}" for m, n in zip(df.loc[rows, "module"], df.loc[rows, "name"], strict=True))

    missing = df["code"].isna()
    repeated = ~missing & df["text"].where(~missing).duplicated(keep="first")
    attrs = {"no_signature": qualified(missing), "duplicate_text": qualified(repeated)}
    df = df[~missing & ~repeated].reset_index(drop=True)
    attrs["masked"] = int((df["text"] != df["summary"]).sum())
    attrs["generic_args"] = sorted(set(generic) & set(df["name"]))
    df = df.drop(columns="summary")
    df.attrs = attrs
    return df
