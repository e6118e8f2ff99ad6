"""The exercise checks: the API contract, the reference passes, and known wrong answers fail.

A wrong answer is asserted to fail on an *edge case*. Edge cases run before the random
ones and do not depend on the seed, so such an answer fails on every seed; the random
cases are exercised by running each reference on a few seeds.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import math
import re
import signal
import threading
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from tests.helpers import NOTEBOOKS
from tests.unit import test_checks_anomaly, test_checks_attribution, test_checks_clip
from utils import attention, checks, dec, gan, ssl, transformer, vae
from utils.checks import core
from utils.metrics.clustering import cluster_accuracy
from utils.metrics.generative import frechet_distance, inception_score
from utils.pretrained import mean_pool

# ---------------------------------------------------------------------------------------------
# correct answers: the library's own and the notebooks' solutions


def softmax(x):
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def attention_ref(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1) @ v


def encoding(n, d):
    p = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2) / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(p * freq), torch.cos(p * freq)
    return pe.float()


def layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (x - mu) / torch.sqrt(var + eps) + beta


def masked_mse(pred, target, mask):
    return ((pred - target) ** 2).mean(-1)[mask].mean()


def silhouette(x, labels, i):
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = d[own].sum() / (own.sum() - 1)
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)


def brute_force_accuracy(y_true, y_pred):
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    table = np.array([[np.sum((y_pred == k) & (y_true == c)) for c in classes] for k in clusters])
    if len(clusters) <= len(classes):
        return max(table[np.arange(len(clusters)), list(p)].sum()
                   for p in itertools.permutations(range(len(classes)), len(clusters))) / len(y_true)
    return max(table[list(p), np.arange(len(classes))].sum()
               for p in itertools.permutations(range(len(clusters)), len(classes))) / len(y_true)


def cutout(images, rows, cols, size):
    h, w = images.shape[-2:]
    r, c = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    top, left = rows[:, None, None], cols[:, None, None]
    return images * ~((r >= top) & (r < top + size) & (c >= left) & (c < left + size))


def fid_eigh(mu1, s1, mu2, s2):
    w, v = np.linalg.eigh(s1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(a @ s2 @ a)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def fid_scipy(mu1, s1, mu2, s2):
    from scipy.linalg import sqrtm

    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2).real))


def inception(probs):
    p_y = probs.mean(axis=0, keepdims=True)
    kl = np.where(probs > 0, probs * (np.log(np.where(probs > 0, probs, 1)) - np.log(p_y)), 0)
    return float(np.exp(kl.sum(axis=1).mean()))


CORRECT = {
    "check_softmax": [softmax, lambda x: attention.softmax(x, -1)],
    "check_attention": [attention_ref, attention.scaled_dot_product_attention],
    "check_sinusoidal_encoding": [encoding, transformer.sinusoidal_positional_encoding],
    "check_layer_norm": [layer_norm, lambda x, g, b, e: F.layer_norm(x, x.shape[-1:], g, b, e)],
    "check_nt_xent": [ssl.nt_xent, ssl.nt_xent_reference],
    "check_masked_mse": [masked_mse],
    "check_mean_pooling": [mean_pool],
    "check_cluster_accuracy": [cluster_accuracy, brute_force_accuracy],
    "check_silhouette_point": [silhouette],
    "check_soft_assignment": [dec.soft_assignment],
    "check_target_distribution": [dec.target_distribution],
    "check_gaussian_kl": [vae.gaussian_kl],
    "check_reparameterize": [lambda m, lv, e: vae.reparameterize(m, lv, e)],
    "check_d_hinge_loss": [gan.d_hinge_loss],
    "check_g_hinge_loss": [gan.g_hinge_loss],
    "check_cutout": [cutout],
    "check_frechet_distance": [frechet_distance, fid_eigh, fid_scipy],
    "check_inception_score": [inception_score, inception],
}

# ---------------------------------------------------------------------------------------------
# wrong answers: the ones measured to pass the old checks, and a typical slip per check


def _no_diag(s):
    return s.masked_fill(torch.eye(len(s), dtype=torch.bool), float("-inf"))


def _nt_xent_variant(z1, z2, t, *, normalise=True, exclude_self=True, anchors=None, positives="other"):
    n = len(z1)
    z = torch.cat([z1, z2])
    z = F.normalize(z, dim=1) if normalise else z
    s = z @ z.T / t
    s = _no_diag(s) if exclude_self else s
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]) if positives == "other" else torch.arange(2 * n)
    loss = -s.log_softmax(1)[torch.arange(2 * n), pos]
    return loss[:n].mean() if anchors == "first" else loss.mean()


def _table(y_true, y_pred):
    _, ti = np.unique(y_true, return_inverse=True)
    _, pi = np.unique(y_pred, return_inverse=True)
    table = np.zeros((pi.max() + 1, ti.max() + 1))
    np.add.at(table, (pi, ti), 1)
    return table


def accuracy_majority_vote(y_true, y_pred):  # maps each cluster to its majority class (many-to-one)
    return float(_table(y_true, y_pred).max(1).sum() / len(y_true))


def accuracy_dropping_noise(y_true, y_pred):  # leaves the noise points out
    keep = y_pred != -1
    return cluster_accuracy(y_true[keep], y_pred[keep])


def accuracy_indexing_labels(y_true, y_pred):  # table[label] with label -1 wraps to the last row
    table = np.zeros((y_pred.max() + 1, y_true.max() + 1))
    np.add.at(table, (y_pred, y_true), 1)
    r, c = linear_sum_assignment(table, maximize=True)
    return float(table[r, c].sum() / len(y_true))


def silhouette_nan_singleton(x, labels, i):  # 0/0 for a point alone in its cluster
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = d[own].sum() / (own.sum() - 1)
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)


def silhouette_divides_by_size(x, labels, i):
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = d[own].mean()
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)


def silhouette_excludes_zero_distances(x, labels, i):  # drops point i by d > 0: drops its duplicates too
    d = cdist(x[i:i + 1], x)[0]
    own = (labels == labels[i]) & (d > 0)
    if own.sum() == 0:
        return 0.0
    a = d[own].mean()
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)


def silhouette_over_b(x, labels, i):  # (b - a) / b, i.e. 1 - a / b: right only when s >= 0
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = d[own].sum() / (own.sum() - 1)
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / b


def silhouette_zero_distances_guarded(x, labels, i):  # drops d = 0, with a = 0 when nothing is left
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    rest = own & (d > 0)
    a = d[rest].mean() if rest.any() else 0.0
    b = min(d[labels == c].mean() for c in np.unique(labels) if c != labels[i])
    return (b - a) / max(a, b)


def accuracy_greedy(y_true, y_pred):  # takes the largest cell, removes its row and column, repeats
    table = _table(y_true, y_pred)
    total = 0.0
    for _ in range(min(table.shape)):
        k, c = np.unravel_index(np.argmax(table), table.shape)
        total += table[k, c]
        table[k, :], table[:, c] = -1, -1
    return float(total / len(y_true))


def silhouette_nearest_point(x, labels, i):  # b from the cluster of the nearest other point
    d = cdist(x[i:i + 1], x)[0]
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = d[own].sum() / (own.sum() - 1)
    other = np.where(own, np.inf, d)
    b = d[labels == labels[int(np.argmin(other))]].mean()
    return (b - a) / max(a, b)


def _fid(mu1, s1, mu2, s2, tr_sqrt, *, square=True):
    diff = ((mu1 - mu2) ** 2).sum() if square else np.linalg.norm(mu1 - mu2)
    return float(diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid_unclipped_eigh(mu1, s1, mu2, s2):  # sqrt of tiny negative eigenvalues: NaN
    w, v = np.linalg.eigh(s1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    with np.errstate(invalid="ignore"):
        return _fid(mu1, s1, mu2, s2, np.sqrt(np.linalg.eigvalsh(a @ s2 @ a)).sum())


def fid_elementwise_sqrt(mu1, s1, mu2, s2):  # np.sqrt of the matrix entries, not sqrtm
    with np.errstate(invalid="ignore"):
        return _fid(mu1, s1, mu2, s2, np.trace(np.sqrt(s1 @ s2)))


def is_naive_log(probs):  # sum p log(p / p_y): 0 log 0 gives NaN
    p_y = probs.mean(0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.exp((probs * np.log(probs / p_y)).sum(1).mean()))


def is_reversed_kl(probs):
    p_y = probs.mean(0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.exp((p_y * np.log(p_y / probs)).sum(1).mean()))


def is_marginal_over_classes(probs):  # p_y averaged over the wrong axis
    p_y = probs.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        kl = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1) / p_y), 0)
    return float(np.exp(kl.sum(1).mean()))


def _encoding(n, d, *, layout="interleaved", exponent="2i", swap=False):
    p = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d // 2, dtype=torch.float64)
    if exponent == "2i":
        freq = 10000.0 ** (-2 * i / d)
        sin, cos = torch.sin(p * freq), torch.cos(p * freq)
    else:  # 10000 ** (j / d) with the column index j
        j = torch.arange(d, dtype=torch.float64)
        angle = p * 10000.0 ** (-j / d)
        sin, cos = torch.sin(angle[:, 0::2]), torch.cos(angle[:, 1::2])
    if swap:
        sin, cos = cos, sin
    if layout == "blocks":
        return torch.cat([sin, cos], 1)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = sin, cos
    return pe


def _ln(x, g, b, eps, *, unbiased=False, eps_outside=False, axis=-1):
    mu = x.mean(axis, keepdim=True)
    var = x.var(axis, keepdim=True, unbiased=unbiased)
    std = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return g * (x - mu) / std + b


def _attention(q, k, v, mask, *, scale="sqrt", fill="inf", dim=-1):
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / {"sqrt": math.sqrt(d), "d": d, "none": 1.0}[scale]
    if fill == "inf":
        scores = scores.masked_fill(~mask, float("-inf"))
    elif fill == "inverted":
        scores = scores.masked_fill(mask, float("-inf"))
    else:  # multiply by the mask: masked keys get score 0, not -inf
        scores = scores * mask
    return torch.softmax(scores, dim=dim) @ v


def _cutout(images, rows, cols, size, *, inclusive=False, swap=False, same_h=False, first=False,
            clamp=False):
    h, w = images.shape[-2:]
    if same_h:
        w = h
    if swap:
        rows, cols = cols, rows
    if first:
        rows, cols = rows[:1].expand(len(rows)), cols[:1].expand(len(cols))
    if clamp:  # moves the square inside the image
        rows, cols = rows.clamp(max=h - size), cols.clamp(max=w - size)
    r, c = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    top, left = rows[:, None, None], cols[:, None, None]
    if inclusive:
        hole = (r >= top) & (r <= top + size) & (c >= left) & (c <= left + size)
    else:
        hole = (r >= top) & (r < top + size) & (c >= left) & (c < left + size)
    return images * ~hole


def _pool_by_length(h, mask):  # keeps the first mask.sum() tokens: wrong when the mask has holes
    n = mask.sum(1)
    return torch.stack([h[b, :int(n[b])].mean(0) for b in range(len(h))])


WRONG = {
    "check_softmax": {
        "no subtraction": lambda x: x.exp() / x.exp().sum(-1, keepdim=True),
        "subtracts the row mean": lambda x: (x - x.mean(-1, keepdim=True)).exp()
        / (x - x.mean(-1, keepdim=True)).exp().sum(-1, keepdim=True),
        "subtracts the global max": lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(-1, keepdim=True),
        "softmax over the first axis": lambda x: softmax(x.transpose(0, -1)).transpose(0, -1),
    },
    "check_attention": {
        "mask by multiplication": lambda q, k, v, m: _attention(q, k, v, m, fill="multiply"),
        "inverted mask": lambda q, k, v, m: _attention(q, k, v, m, fill="inverted"),
        "no scaling": lambda q, k, v, m: _attention(q, k, v, m, scale="none"),
        "divides by d_k": lambda q, k, v, m: _attention(q, k, v, m, scale="d"),
        "softmax over the queries": lambda q, k, v, m: _attention(q, k, v, m, dim=-2),
    },
    "check_sinusoidal_encoding": {
        "all zeros": lambda n, d: torch.zeros(n, d),
        "sin and cos swapped": lambda n, d: _encoding(n, d, swap=True),
        "10000 ** (j / d) per column": lambda n, d: _encoding(n, d, exponent="j"),
        "sines then cosines": lambda n, d: _encoding(n, d, layout="blocks"),
    },
    "check_layer_norm": {
        "eps outside the square root": lambda x, g, b, e: _ln(x, g, b, e, eps_outside=True),
        "unbiased variance": lambda x, g, b, e: _ln(x, g, b, e, unbiased=True),
        "hard-coded eps": lambda x, g, b, e: _ln(x, g, b, 1e-5),
        "no eps": lambda x, g, b, e: _ln(x, g, b, 0.0),
        "over the first axis": lambda x, g, b, e: _ln(x, g, b, e, axis=0),
    },
    "check_nt_xent": {
        "no normalisation": lambda a, b, t: _nt_xent_variant(a, b, t, normalise=False),
        "ignores the temperature": lambda a, b, t: _nt_xent_variant(a, b, 1.0),
        "keeps the self-similarity": lambda a, b, t: _nt_xent_variant(a, b, t, exclude_self=False),
        "N anchors only": lambda a, b, t: _nt_xent_variant(a, b, t, anchors="first"),
        "positives on the diagonal": lambda a, b, t: _nt_xent_variant(a, b, t, positives="self"),
    },
    "check_masked_mse": {
        "all patches": lambda p, t, m: ((p - t) ** 2).mean(),
        "inverted mask": lambda p, t, m: masked_mse(p, t, ~m),
        "mean of per-image means": lambda p, t, m: torch.stack([masked_mse(p[i], t[i], m[i])
                                                                for i in range(len(p))]).mean(),
        "sum over pixels": lambda p, t, m: ((p - t) ** 2).sum(-1)[m].mean(),
    },
    "check_mean_pooling": {
        "no mask": lambda h, m: h.mean(1),
        "divides by L": lambda h, m: (h * m[..., None]).sum(1) / h.shape[1],
        "divides by the batch's token count": lambda h, m: (h * m[..., None]).sum(1) / m.sum(),
        "first `length` tokens": _pool_by_length,
    },
    "check_cluster_accuracy": {
        "plain accuracy": lambda a, b: float(np.mean(a == b)),
        "majority vote": accuracy_majority_vote,
        "drops noise points": accuracy_dropping_noise,
        "indexes a table by label": accuracy_indexing_labels,
        "greedy matching": accuracy_greedy,
    },
    "check_silhouette_point": {
        "NaN for a singleton": silhouette_nan_singleton,
        "divides by the cluster size": silhouette_divides_by_size,
        "excludes itself by distance 0": silhouette_excludes_zero_distances,
        "b from the nearest point's cluster": silhouette_nearest_point,
        "scaled by 0.9": lambda x, lab, i: silhouette(x, lab, i) * 0.9,
        "divides by b": silhouette_over_b,
        "drops distance 0, a = 0 if nothing is left": silhouette_zero_distances_guarded,
    },
    "check_soft_assignment": {
        "Gaussian kernel": lambda z, mu, a: torch.softmax(-torch.cdist(z, mu) ** 2, 1),
        "distances not squared": lambda z, mu, a: _student_t(torch.cdist(z, mu), a),
        "exponent fixed at -1": lambda z, mu, a: _student_t(torch.cdist(z, mu) ** 2, 1.0, alpha_in=a),
        "normalised over the centroids axis 0": lambda z, mu, a: _student_t(torch.cdist(z, mu) ** 2, a, dim=0),
    },
    "check_target_distribution": {
        "no cluster frequency": lambda q: q**2 / (q**2).sum(1, keepdim=True),
        "no square": lambda q: (q / q.sum(0)) / (q / q.sum(0)).sum(1, keepdim=True),
        "columns renormalised": lambda q: (q**2 / q.sum(0)) / (q**2 / q.sum(0)).sum(0, keepdim=True),
    },
    "check_gaussian_kl": {
        "summed over dimensions": lambda m, lv: vae.gaussian_kl(m, lv).sum(-1),
        "exp(logvar) as the std": lambda m, lv: 0.5 * (m**2 + lv.exp() ** 2 - 1 - lv),
        "no -1": lambda m, lv: 0.5 * (m**2 + lv.exp() - lv),
        "no 0.5": lambda m, lv: m**2 + lv.exp() - 1 - lv,
    },
    "check_reparameterize": {
        "variance instead of std": lambda m, lv, e: m + lv.exp() * e,
        "fresh noise": lambda m, lv, e: m + torch.exp(0.5 * lv) * torch.randn_like(m),
        "logvar as the std": lambda m, lv, e: m + lv * e,
    },
    "check_d_hinge_loss": {
        "no relu": lambda r, f: (1 - r).mean() + (1 + f).mean(),
        "one mean over both batches": lambda r, f: F.relu(1 - torch.cat([r, -f])).mean() * 2,
        "signs swapped": lambda r, f: F.relu(1 + r).mean() + F.relu(1 - f).mean(),
        "sums": lambda r, f: F.relu(1 - r).sum() + F.relu(1 + f).sum(),
    },
    "check_g_hinge_loss": {
        "wrong sign": lambda f: f.mean(),
        "a hinge": lambda f: F.relu(1 - f).mean(),
    },
    "check_cutout": {
        "identity": lambda x, r, c, s: x,
        "off by one": lambda x, r, c, s: _cutout(x, r, c, s, inclusive=True),
        "rows and cols swapped": lambda x, r, c, s: _cutout(x, r, c, s, swap=True),
        "H for both axes": lambda x, r, c, s: _cutout(x, r, c, s, same_h=True),
        "first corner for every image": lambda x, r, c, s: _cutout(x, r, c, s, first=True),
        "square moved inside the image": lambda x, r, c, s: _cutout(x, r, c, s, clamp=True),
    },
    "check_frechet_distance": {
        "no cross term": lambda m1, s1, m2, s2: _fid(m1, s1, m2, s2, 0.0),
        "unclipped eigenvalues": fid_unclipped_eigh,
        "element-wise sqrt": fid_elementwise_sqrt,
        "mean difference not squared": lambda m1, s1, m2, s2: _fid(m1, s1, m2, s2, _tr_sqrt(s1, s2), square=False),
    },
    "check_inception_score": {
        "sum p log(p / p_y)": is_naive_log,
        "reversed KL": is_reversed_kl,
        "no exp": lambda p: float(np.log(inception_score(p))),
        "marginal over classes": is_marginal_over_classes,
    },
}

CORRECT.update(test_checks_attribution.CORRECT)
WRONG.update(test_checks_attribution.WRONG)
CORRECT.update(test_checks_clip.CORRECT)
WRONG.update(test_checks_clip.WRONG)
CORRECT.update(test_checks_anomaly.CORRECT)
WRONG.update(test_checks_anomaly.WRONG)


def _student_t(d2, alpha, *, alpha_in=None, dim=1):
    kernel = (1 + d2 / (alpha if alpha_in is None else alpha_in)) ** (-(alpha + 1) / 2)
    return kernel / kernel.sum(dim=dim, keepdim=True)


def _tr_sqrt(s1, s2):
    w, v = np.linalg.eigh(s1)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(a @ s2 @ a), 0, None)).sum())


def _check_names_in_modules():
    return {name for module in (core, checks.ssl, checks.clustering, checks.dec, checks.vae,
                                checks.gan, checks.evaluation, checks.attribution, checks.clip,
                                checks.anomaly)
            for name, obj in vars(module).items()
            if name.startswith("check_") and inspect.isfunction(obj) and obj.__module__ == module.__name__}


# ---------------------------------------------------------------------------------------------
# every check


def test_all_checks_lists_every_check_and_every_notebook_call():
    assert set(checks.ALL_CHECKS) == _check_names_in_modules() == set(CORRECT) == set(WRONG)
    for name, fn in checks.ALL_CHECKS.items():
        assert fn.__name__ == name and getattr(checks, name) is fn
    called = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            called |= set(re.findall(r"checks\.(check_\w+)\(", "".join(cell["source"])))
    assert called and called <= set(checks.ALL_CHECKS)


@pytest.mark.parametrize("name", sorted(checks.ALL_CHECKS))
def test_signature_follows_the_contract(name):
    params = inspect.signature(checks.ALL_CHECKS[name]).parameters
    assert list(params) == ["student", "seed", "verbose", "time_limit"]
    assert params["student"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("seed", "verbose", "time_limit"))
    assert (params["seed"].default, params["verbose"].default, params["time_limit"].default) == (None, True, 10.0)


@pytest.mark.parametrize("name", sorted(checks.ALL_CHECKS))
def test_correct_answers_pass(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's sqrtm warns about singular matrices
        for fn, seed in itertools.product(CORRECT[name], (0, 1, 2)):
            result = checks.ALL_CHECKS[name](fn, seed=seed, verbose=False)
            assert result.status == "ok", result.line
            assert result.case is None and result.seed == seed


@pytest.mark.parametrize("name,mistake", [(n, m) for n in sorted(WRONG) for m in WRONG[n]])
def test_wrong_answers_fail_on_an_edge_case(name, mistake):
    """Edge cases run first and do not depend on the seed: failing one fails every seed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = checks.ALL_CHECKS[name](WRONG[name][mistake], seed=0, verbose=False)
    assert result.status in ("wrong", "error"), result.line
    assert result.case.startswith("edge: "), result.line


@pytest.mark.parametrize("seed", range(20))
def test_the_measured_wrong_answers_fail_on_every_seed(seed):
    """The five answers that passed the old random checks, run for real on 20 seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, mistake in [("check_silhouette_point", "NaN for a singleton"),
                              ("check_softmax", "subtracts the row mean"),
                              ("check_layer_norm", "eps outside the square root"),
                              ("check_inception_score", "sum p log(p / p_y)"),
                              ("check_frechet_distance", "unclipped eigenvalues")]:
            result = checks.ALL_CHECKS[name](WRONG[name][mistake], seed=seed, verbose=False)
            assert result.status == "wrong", result.line


@pytest.mark.parametrize("name", sorted(checks.ALL_CHECKS))
def test_not_attempted_and_error_for_every_check(name):
    check = checks.ALL_CHECKS[name]

    def todo(*args):
        raise NotImplementedError

    def crash(*args):
        raise KeyError("oops")

    r = check(todo, seed=5, verbose=False)
    assert (r.status, r.check, r.seed, bool(r), r.passed) == ("not_attempted", name, 5, False, False)
    assert r.case.startswith("edge: ")
    r = check(crash, seed=5, verbose=False)
    assert r.status == "error" and "KeyError" in r.message and "oops" in r.message


def test_timeout_stops_an_endless_loop_and_restores_the_alarm():
    def forever(x):
        while True:
            pass

    seen = []
    old = signal.signal(signal.SIGALRM, lambda *a: seen.append(1))
    try:
        t0 = time.monotonic()
        r = checks.check_softmax(forever, seed=3, verbose=False, time_limit=0.5)
        assert time.monotonic() - t0 < 3.0
        assert r.status == "timeout" and not r and r.case == "edge: rows spread over 1000"
        assert "0.5 s" in r.message and "seed=3" in r.message
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert signal.getsignal(signal.SIGALRM) is not None and not seen
    finally:
        signal.signal(signal.SIGALRM, old)


def test_no_time_limit_off_the_main_thread():
    out = []
    thread = threading.Thread(target=lambda: out.append(checks.check_softmax(softmax, seed=1, verbose=False,
                                                                              time_limit=1e-6)))
    thread.start()
    thread.join()
    assert out[0].status == "ok"
    with core._time_limit(None) as active:
        assert not active


def test_verbose_prints_one_line_and_quiet_prints_nothing(capsys):
    wrong = WRONG["check_softmax"]["subtracts the row mean"]
    assert not checks.check_softmax(wrong, seed=1234, verbose=False)
    assert capsys.readouterr().out == ""
    r = checks.check_softmax(softmax, seed=7)
    assert capsys.readouterr().out == f"{r.line}\n" == f"✅ check_softmax: {r.message}\n"

    def my_softmax(x):
        return wrong(x)

    r = checks.check_softmax(my_softmax, seed=1234)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("❌ check_softmax: ")
    assert out == f"❌ check_softmax: {r.message} Hint: {r.hint}\n"
    assert r.case == "edge: rows spread over 1000" and r.case in r.message
    assert "1234" in r.message and "re-run with checks.check_softmax(my_softmax, seed=1234)" in r.message
    assert "NaN" in r.message and "✅" not in r.message and "❌" not in r.message


def test_run_check_runs_edge_cases_first_then_random_ones():
    calls = []

    def student(x):  # right on the edge case (zeros), wrong wherever x > 0.5
        calls.append(x.copy())
        return x + (x > 0.5)

    r = checks.run_check("check_demo", student, lambda x: x, lambda rng: (rng.random(4),), hint="h",
                         edge_cases=[("zeros", (np.zeros(4),))], seed=42, verbose=False)
    assert r.status == "wrong" and re.fullmatch(r"random case [1-5] of 5", r.case), r.line
    assert r.case in r.message and "seed=42" in r.message and "your_function" not in r.message
    assert not calls[0].any() and len(calls) == int(r.case.split()[2]) + 1
    again = checks.run_check("check_demo", student, lambda x: x, lambda rng: (rng.random(4),), hint="h",
                             edge_cases=[("zeros", (np.zeros(4),))], seed=42, verbose=False)
    assert again == r


def test_a_fresh_seed_is_drawn_and_reported():
    a, b = (checks.check_gaussian_kl(vae.gaussian_kl, verbose=False) for _ in range(2))
    assert a and b and a.seed != b.seed and str(a.seed) in a.message


def test_wrong_shapes_types_and_nan_are_wrong():
    assert checks.check_softmax(lambda x: softmax(x)[..., :-1], verbose=False).status == "wrong"
    r = checks.check_softmax(lambda x: None, seed=0, verbose=False)
    assert r.status == "wrong" and "NoneType" in r.message
    r = checks.check_inception_score(lambda p: "4", seed=0, verbose=False)
    assert r.status == "wrong"
    r = checks.check_gaussian_kl(lambda m, lv: vae.gaussian_kl(m, lv) * float("nan"), seed=0, verbose=False)
    assert r.status == "wrong" and "NaN" in r.message
    # a 0-d tensor or a numpy float is fine for a scalar answer
    assert checks.check_inception_score(lambda p: np.float32(inception_score(p)), seed=0, verbose=False)
    assert checks.check_frechet_distance(lambda *a: torch.tensor(frechet_distance(*a)), seed=0, verbose=False)


def test_the_student_gets_a_copy_and_tuples_are_unwrapped():
    def in_place(x):
        x -= x.amax(-1, keepdim=True)
        x.exp_()
        return x / x.sum(-1, keepdim=True)

    assert checks.check_softmax(in_place, seed=0, verbose=False)
    with_weights = lambda q, k, v, m: (attention_ref(q, k, v, m), None)  # noqa: E731
    assert checks.check_attention(with_weights, seed=0, verbose=False)


def test_check_result_is_a_frozen_dataclass():
    r = checks.CheckResult(check="check_x", status="wrong", case="edge: e", seed=1, message="m", hint="h")
    assert [f.name for f in dataclasses.fields(r)] == ["check", "status", "case", "seed", "message", "hint"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = "ok"
    assert not r and not r.passed and r.line == "❌ check_x: m Hint: h"
    assert dataclasses.replace(r, status="ok") and set(checks.STATUSES) == {
        "ok", "wrong", "error", "not_attempted", "timeout"}


def test_not_a_function_is_a_type_error():
    with pytest.raises(TypeError, match="function itself"):
        checks.check_softmax(42)


def _silhouette_nearest_centroid(x, labels, i):
    """Wrong: b from the cluster whose centroid is nearest, not the smallest mean distance."""
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = np.linalg.norm(x[own] - x[i], axis=1).sum() / (own.sum() - 1)
    others = [c for c in np.unique(labels) if c != labels[i]]
    c = min(others, key=lambda c: np.linalg.norm(x[labels == c].mean(0) - x[i]))
    b = np.linalg.norm(x[labels == c] - x[i], axis=1).mean()
    return float((b - a) / max(a, b))


def _silhouette_skips_singletons(x, labels, i):
    """Wrong: singleton clusters are left out when looking for b."""
    own = labels == labels[i]
    if own.sum() == 1:
        return 0.0
    a = np.linalg.norm(x[own] - x[i], axis=1).sum() / (own.sum() - 1)
    b = min(np.linalg.norm(x[labels == c] - x[i], axis=1).mean()
            for c in np.unique(labels) if c != labels[i] and (labels == c).sum() > 1)
    return float((b - a) / max(a, b))


@pytest.mark.parametrize("wrong", [_silhouette_nearest_centroid, _silhouette_skips_singletons])
def test_silhouette_mistakes_found_in_review_fail_on_an_edge_case(wrong):
    for seed in (0, 1):
        result = checks.check_silhouette_point(wrong, seed=seed, verbose=False)
        assert result.status == "wrong" and result.case.startswith("edge:"), result
