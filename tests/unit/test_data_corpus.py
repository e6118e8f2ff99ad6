"""Tests for the scipy docstring corpus in utils.data."""

import numpy as np
import pytest

from utils.data import docstring_corpus_frame, docstring_summary, load_docstring_corpus


def test_summary_skips_signatures_and_joins_lines():
    doc = """jv(v, z, out=None)

    Bessel function of the first kind
    of real order.

    Parameters
    ----------
    v : array_like
    """
    assert docstring_summary(doc) == "Bessel function of the first kind of real order."


def test_summary_skips_wrapped_signatures_and_directives():
    doc = ("yen(csgraph, source, sink, K, *,\n        unweighted=False)\n\n"
           ".. deprecated:: 1.0\n\nYen's K shortest paths.")
    assert docstring_summary(doc) == "Yen's K shortest paths."


@pytest.mark.parametrize("doc", [None, "", "   \n  ", "f(x)", "Parameters\n----------\nx : int"])
def test_missing_summaries(doc):
    assert docstring_summary(doc) is None


def test_summary_bad_type():
    with pytest.raises(TypeError, match="doc must be a string"):
        docstring_summary(3)


def test_corpus_shapes_labels_and_order():
    texts, labels, names = load_docstring_corpus()
    assert len(texts) == len(labels) > 1000
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(len(names)))
    assert names == sorted(names) and {"linalg", "stats", "special", "signal"} <= set(names)
    assert all(isinstance(t, str) and t and "\n" not in t for t in texts)
    # deterministic: a second call returns the same corpus
    texts2, labels2, names2 = load_docstring_corpus()
    assert texts == texts2 and np.array_equal(labels, labels2) and names == names2


def test_corpus_cleaning_rules():
    df = docstring_corpus_frame(min_count=20)
    key = df["summary"].str.lower().str.split().str.join(" ")
    assert not key.duplicated().any()  # no summary twice, in any subpackage
    assert df["subpackage"].value_counts().min() >= 20
    assert not df["summary"].str.match(r"^[A-Za-z_][\w.]*\(").any()  # no ufunc signatures
    dropped = df.attrs["dropped"]
    assert dropped["cross_label_duplicates"] >= 1 and dropped["within_label_duplicates"] >= 1
    assert not set(dropped["small_class_names"]) & set(df["subpackage"])
    # a function from a submodule gets its subpackage's label
    row = df[(df["module"] == "scipy.sparse.linalg") & (df["name"] == "splu")]
    assert row["subpackage"].tolist() == ["sparse"]
    # a ufunc's summary is its first prose line, not its signature
    special = df[df["module"] == "scipy.special"].set_index("name")["summary"]
    assert special["gammaincc"] == "Regularized upper incomplete gamma function."
    # jv and its alias jn share one docstring: only the first name (sorted) is kept
    assert "jn" in special.index and "jv" not in special.index


def test_min_count_drops_small_classes():
    _, _, all_names = load_docstring_corpus(min_count=1)
    _, _, names = load_docstring_corpus(min_count=100)
    assert set(names) < set(all_names) and "special" in names


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_bad_min_count(bad):
    with pytest.raises(ValueError, match="min_count"):
        load_docstring_corpus(min_count=bad)


def test_cross_label_duplicates_are_listed():
    df = docstring_corpus_frame()
    names = df.attrs["cross_label_names"]
    assert len(names) == df.attrs["dropped"]["cross_label_duplicates"]
    assert all(n.startswith("scipy.") for n in names)
