r"""Explanations of a model's output, and tests of whether they are faithful.

Two families of per-input scores ("which part of the input mattered?"):

* **From the attention weights.** :func:`attention_rollout` (Abnar & Zuidema, 2020)
  follows the attention through the layers: with :math:`\bar A_l` the head-averaged
  attention of layer :math:`l`, the residual connection is modelled by adding the
  identity, each row is re-normalised to sum to one, and the layers are multiplied
  from the first up,

  .. math::
      \hat A_l = \operatorname{rownorm}\!\left(\tfrac12 \bar A_l + \tfrac12 I\right), \qquad
      R = \hat A_L \hat A_{L-1} \cdots \hat A_1 .

* **From the gradients.** :func:`saliency` is the gradient of the output with respect
  to the input (Simonyan et al., 2014); :func:`integrated_gradients` (Sundararajan et
  al., 2017) averages the gradient along the straight path from a baseline
  :math:`x'` to the input :math:`x` and multiplies by :math:`x - x'`,

  .. math::
      \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1
      \frac{\partial f\bigl(x' + \alpha (x - x')\bigr)}{\partial x_i}\, d\alpha ,

  computed with a Riemann sum; its values add up to :math:`f(x) - f(x')`
  (*completeness*) as the number of steps grows.

Faithfulness: :func:`deletion_curve` removes the parts ranked most important first and
records the model's score after each removal (Samek et al., 2017); :func:`curve_auc`
summarises it (lower = the ranking found what the model relies on sooner).
:func:`patch_scores` sums pixel attributions over image patches, so that pixel and
token explanations can be compared, and :func:`rank_correlation` compares two rankings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .transformer import image_to_patches

_BATCH_DEPENDENT = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)

__all__ = ["attention_rollout", "saliency", "integrated_gradients", "riemann_alphas",
           "patch_scores", "deletion_curve", "curve_auc", "rank_correlation",
           "RIEMANN_METHODS"]

#: The Riemann rules of :func:`riemann_alphas`.
RIEMANN_METHODS = ("left", "right", "middle", "trapezoid")


# --------------------------------------------------------------------------- attention rollout
def _stack_attentions(attentions) -> torch.Tensor:
    if torch.is_tensor(attentions):
        att = attentions
    elif isinstance(attentions, Sequence) and not isinstance(attentions, str) and len(attentions) > 0:
        if not all(torch.is_tensor(a) for a in attentions):
            raise TypeError("attentions must be a tensor or a sequence of tensors, one per layer")
        shapes = {tuple(a.shape) for a in attentions}
        if len(shapes) != 1:
            raise ValueError(f"every layer's attention must have the same shape, got {sorted(shapes)}")
        att = torch.stack(list(attentions))
    else:
        raise TypeError(f"attentions must be a (L, B, H, T, T) tensor or a non-empty list of "
                        f"(B, H, T, T) tensors, got {type(attentions).__name__}")
    if not att.is_floating_point():
        raise TypeError(f"attention weights must be floating point, got {att.dtype}")
    if att.ndim != 5 or att.shape[-1] != att.shape[-2]:
        raise ValueError(f"attentions must be (L, B, H, T, T) (a list of (B, H, T, T) maps), "
                         f"got shape {tuple(att.shape)}")
    if not torch.isfinite(att).all():
        raise ValueError("attention weights contain NaN or infinite values")
    if (att < 0).any():
        raise ValueError("attention weights must be non-negative")
    return att


def attention_rollout(attentions, *, residual: bool = True, head_fusion: str = "mean") -> torch.Tensor:
    """Attention rollout: how much each token's final state draws on each input token.

    ``attentions`` is a list of per-layer ``(B, H, T, T)`` attention weights (rows are
    queries), first layer first, or one ``(L, B, H, T, T)`` tensor. Heads are fused by
    ``head_fusion`` (``"mean"``, ``"max"`` or ``"min"``); with ``residual`` the identity
    is added (``0.5 * A + 0.5 * I``); every row is re-normalised to sum to one; and the
    layers are multiplied, the last on the left. Returns ``(B, T, T)``: row 0 is the
    [CLS] token's rollout when [CLS] comes first.
    """
    att = _stack_attentions(attentions)
    fusions = {"mean": lambda a: a.mean(2), "max": lambda a: a.amax(2), "min": lambda a: a.amin(2)}
    if head_fusion not in fusions:
        raise ValueError(f"head_fusion must be one of {sorted(fusions)}, got {head_fusion!r}")
    a = fusions[head_fusion](att)                                   # (L, B, T, T)
    if residual:
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = 0.5 * a + 0.5 * eye
    rows = a.sum(-1, keepdim=True)
    if (rows <= 0).any():
        raise ValueError("an attention row sums to zero: it cannot be re-normalised "
                         "(use residual=True, or check the maps)")
    a = a / rows
    out = a[0]
    for layer in a[1:]:
        out = layer @ out
    return out


# --------------------------------------------------------------------------- gradients
def _check_inputs(inputs) -> torch.Tensor:
    if not torch.is_tensor(inputs):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point to take gradients with respect to them, "
                        f"got dtype {inputs.dtype} (convert with .float() or .double())")
    if inputs.ndim < 1 or len(inputs) == 0:
        raise ValueError(f"inputs must be a non-empty batch (B, ...), got shape {tuple(inputs.shape)}")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values")
    return inputs


def _select(out, target, batch: int) -> torch.Tensor:
    """The ``(B,)`` scalar outputs to differentiate: ``out`` itself, or column ``target``."""
    if not torch.is_tensor(out):
        raise TypeError(f"forward must return a tensor, got {type(out).__name__}")
    if out.ndim == 0 or out.shape[0] != batch:
        raise ValueError(f"forward must return one output row per input, (B,) or (B, C) with "
                         f"B = {batch}; got shape {tuple(out.shape)}")
    if out.ndim == 1:
        if target is not None:
            raise ValueError("target is given but forward returns one value per input (B,)")
        return out
    if out.ndim != 2:
        raise ValueError(f"forward must return (B,) or (B, C), got shape {tuple(out.shape)}")
    if target is None:
        raise ValueError(f"forward returns {out.shape[1]} outputs per input: pass target "
                         f"(an int or a (B,) tensor of column indices)")
    t = torch.as_tensor(target, device=out.device)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"target must hold integer column indices, got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"target must be an int or have shape ({batch},), got {tuple(t.shape)}")
    if (t < 0).any() or (t >= out.shape[1]).any():
        raise ValueError(f"target indices must lie in [0, {out.shape[1]}), got "
                         f"{int(t.min())}..{int(t.max())}")
    return out.gather(1, t.long()[:, None])[:, 0]


def _gradient(forward: Callable, x: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d out_i / d x_i, out_i)`` for each input of the batch (one backward pass)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = _select(forward(x), target, len(x))
        if not out.requires_grad:
            raise ValueError("the model's output does not require grad: it does not depend on the "
                             "input through autograd (was it computed under torch.no_grad(), "
                             "detached, or converted to NumPy?)")
        if not out.is_floating_point():
            raise TypeError(f"the model's output must be floating point, got {out.dtype}")
        if not torch.isfinite(out).all():
            raise ValueError("forward returned NaN or inf")
        grad, = torch.autograd.grad(out.sum(), x, allow_unused=True)
    if grad is None:
        raise ValueError("the model's output does not depend on the input")
    if not torch.isfinite(grad).all():
        raise ValueError("the gradient of forward contains NaN or inf")
    return grad, out.detach()


def _check_forward(forward) -> None:
    """Reject non-callables, and modules whose output depends on the batch or on chance."""
    if not callable(forward):
        raise TypeError(f"forward must be callable, got {type(forward).__name__}")
    if isinstance(forward, torch.nn.Module):
        live = sorted({type(m).__name__ for m in forward.modules()
                       if isinstance(m, _BATCH_DEPENDENT) and m.training and getattr(m, "p", 1.0) > 0})
        if live:
            raise ValueError(f"forward is a module in training mode with {', '.join(live)} layers: "
                             f"its output would depend on the batch or on chance; call .eval() first")


def saliency(forward: Callable, inputs: torch.Tensor, target=None, *,
             absolute: bool = True) -> torch.Tensor:
    """The gradient of each input's output with respect to that input (Simonyan et al., 2014).

    ``forward(x)`` maps a batch ``(B, ...)`` to ``(B,)`` scores, or to ``(B, C)`` with
    ``target`` choosing a column (an int or a ``(B,)`` tensor). The outputs of different
    inputs must not depend on each other (no batch statistics). With ``absolute`` the
    magnitude is returned, as in the paper and in ``captum.attr.Saliency``.
    """
    _check_forward(forward)
    x = _check_inputs(inputs)
    grad, _ = _gradient(forward, x, target)
    return grad.abs() if absolute else grad


def riemann_alphas(steps: int, method: str = "middle", *, dtype=torch.float64
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``alpha`` in [0, 1] and weights of a ``steps``-point Riemann rule for an integral over [0, 1].

    ``"left"``, ``"right"`` and ``"middle"`` put ``steps`` points at the left ends, right
    ends or midpoints of equal intervals, each weighted ``1 / steps`` (the rules of
    captum's ``riemann_left``, ``riemann_right`` and ``riemann_middle``). ``"trapezoid"``
    puts them at ``linspace(0, 1, steps)`` with weights ``1 / (steps - 1)``, halved at
    both ends (needs ``steps >= 2``); the weights always sum to one.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if method not in RIEMANN_METHODS:
        raise ValueError(f"method must be one of {RIEMANN_METHODS}, got {method!r}")
    n = int(steps)
    if method == "trapezoid":
        if n < 2:
            raise ValueError(f"the trapezoid rule needs steps >= 2, got {n}")
        alphas = torch.linspace(0.0, 1.0, n, dtype=dtype)
        weights = torch.full((n,), 1.0 / (n - 1), dtype=dtype)
        weights[[0, -1]] /= 2
        return alphas, weights
    start = {"left": 0.0, "middle": 0.5, "right": 1.0}[method]
    alphas = (torch.arange(n, dtype=dtype) + start) / n
    return alphas, torch.full((n,), 1.0 / n, dtype=dtype)


def integrated_gradients(forward: Callable, inputs: torch.Tensor, baseline=None, target=None, *,
                         steps: int = 50, method: str = "middle", batch_size: int = 4096,
                         return_delta: bool = False):
    """Integrated Gradients (Sundararajan et al., 2017) with a ``steps``-point Riemann sum.

    ``forward`` and ``target`` as in :func:`saliency`. ``baseline`` is a tensor of the
    inputs' shape, or one input's shape (broadcast over the batch), or a number;
    ``None`` means zeros. All ``B * steps`` interpolated inputs are evaluated in chunks
    of at most ``batch_size``. Returns the attributions (the inputs' shape), and with
    ``return_delta`` also the completeness error ``sum(IG) - (f(x) - f(baseline))`` per input.
    """
    _check_forward(forward)
    x = _check_inputs(inputs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    alphas, weights = riemann_alphas(steps, method, dtype=x.dtype)
    alphas, weights = alphas.to(x.device), weights.to(x.device)
    if baseline is None:
        base = torch.zeros_like(x)
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        base = torch.full_like(x, float(baseline))
    elif torch.is_tensor(baseline):
        if baseline.shape not in (x.shape, x.shape[1:]):
            raise ValueError(f"baseline must have the inputs' shape {tuple(x.shape)} or one "
                             f"input's {tuple(x.shape[1:])}, got {tuple(baseline.shape)}")
        if not baseline.is_floating_point():
            raise TypeError(f"baseline must be floating point, got {baseline.dtype}")
        base = baseline.to(x.dtype).expand_as(x)
    else:
        raise TypeError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
    if not torch.isfinite(base).all():
        raise ValueError("baseline contains NaN or infinite values")
    b, n = len(x), len(alphas)
    diff = x - base
    tgt = None
    if target is not None:
        t = torch.as_tensor(target)
        tgt = t.expand(b) if t.ndim == 0 else t
        if tgt.shape != (b,):
            raise ValueError(f"target must be an int or have shape ({b},), got {tuple(t.shape)}")
    shape = (1,) * (x.ndim - 1)
    # the path points, step-major: row s * B + i is input i at alpha_s
    path = (base[None] + alphas.view(-1, 1, *shape) * diff[None]).reshape(n * b, *x.shape[1:])
    rep_target = None if tgt is None else tgt.repeat(n)
    grads = []
    for start in range(0, n * b, batch_size):
        chunk = slice(start, start + batch_size)
        g, _ = _gradient(forward, path[chunk], None if rep_target is None else rep_target[chunk])
        grads.append(g)
    grads = torch.cat(grads).reshape(n, b, *x.shape[1:])
    attr = diff * (weights.view(-1, 1, *shape) * grads).sum(0)
    if not return_delta:
        return attr
    with torch.no_grad():
        ends = torch.cat([x, base])
        out = _select(forward(ends), None if tgt is None else tgt.repeat(2), 2 * b)
    delta = attr.reshape(b, -1).sum(1) - (out[:b] - out[b:])
    return attr, delta


# --------------------------------------------------------------------------- faithfulness
def patch_scores(pixel_scores: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sum pixel attributions ``(B, H, W)`` over ``patch_size`` squares: ``(B, n_patches)``.

    The patches are numbered row by row, as the tokens of
    :func:`utils.transformer.image_to_patches`.
    """
    if not torch.is_tensor(pixel_scores) or not pixel_scores.is_floating_point():
        raise TypeError(f"pixel_scores must be a floating-point tensor, got "
                        f"{getattr(pixel_scores, 'dtype', type(pixel_scores).__name__)}")
    if pixel_scores.ndim != 3:
        raise ValueError(f"pixel_scores must be (B, H, W), got {tuple(pixel_scores.shape)}")
    patch_size = _check_patch_size(patch_size, pixel_scores.shape[1:])
    return image_to_patches(pixel_scores, patch_size).sum(-1)


def _check_patch_size(patch_size, hw) -> int:
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    h, w = hw
    if h % patch_size or w % patch_size:
        raise ValueError(f"patch_size={int(patch_size)} does not divide the image size {h}x{w}")
    return int(patch_size)


def _check_order(order, batch: int, n_patches: int) -> torch.Tensor:
    order = torch.as_tensor(order)
    if order.is_floating_point() or order.dtype == torch.bool:
        raise TypeError(f"order must hold integer patch indices, got dtype {order.dtype}")
    if order.shape != (batch, n_patches):
        raise ValueError(f"order must be (B, n_patches) = ({batch}, {n_patches}), got {tuple(order.shape)}")
    if not torch.equal(order.sort(1).values, torch.arange(n_patches).expand(batch, -1)):
        raise ValueError("each row of order must be a permutation of the patch indices 0..n_patches-1")
    return order.long()


@torch.no_grad()
def deletion_curve(score: Callable, images: torch.Tensor, order, patch_size: int,
                   fill=0.0) -> torch.Tensor:
    """Scores as the patches are removed in ``order``: ``(B, n_patches + 1)``.

    ``order[i]`` lists image ``i``'s patches, most important first (e.g.
    ``scores.argsort(1, descending=True)``). Column ``k`` is ``score(images with their
    first k patches replaced by fill)``; ``score`` maps ``(B, H, W)`` images to ``(B,)``.
    ``fill`` is a number or an image (``(H, W)`` or ``(B, H, W)``), e.g. the mean digit.
    All ``B * (n_patches + 1)`` images are scored in one call.
    """
    if not torch.is_tensor(images) or not images.is_floating_point() or images.ndim != 3:
        raise ValueError(f"images must be a floating-point (B, H, W) tensor, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} "
                         f"{tuple(getattr(images, 'shape', ()))}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    b, h, w = images.shape
    p = _check_patch_size(patch_size, (h, w))
    n = (h // p) * (w // p)
    order = _check_order(order, b, n)
    fill_img = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
    if fill_img.ndim == 0 or fill_img.shape in (images.shape[1:], images.shape):
        fill_img = fill_img.expand_as(images)
    else:
        raise ValueError(f"fill must be a number, an (H, W) or a (B, H, W) image, got {tuple(fill_img.shape)}")
    if not torch.isfinite(fill_img).all():
        raise ValueError("fill contains NaN or infinite values")
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    patch_of = (rows // p) * (w // p) + cols // p                    # (H, W): each pixel's patch
    rank = order.argsort(1)                                          # rank[i, j]: when patch j goes
    k = torch.arange(n + 1)
    removed = rank[:, None, :] < k[None, :, None]                    # (B, n+1, N)
    gone = removed[:, :, patch_of]                                   # (B, n+1, H, W)
    batch = torch.where(gone, fill_img[:, None], images[:, None]).reshape(b * (n + 1), h, w)
    out = score(batch)
    if not torch.is_tensor(out) or out.shape != (b * (n + 1),):
        raise ValueError(f"score must return one value per image, shape ({b * (n + 1)},), got "
                         f"{tuple(getattr(out, 'shape', ()))}")
    if out.is_floating_point() and not torch.isfinite(out).all():
        raise ValueError("score returned NaN or inf")
    return out.reshape(b, n + 1)


def curve_auc(curve) -> torch.Tensor:
    """Area under each row of ``(B, K)`` curves, with x spread evenly over [0, 1] (trapezoid rule)."""
    c = torch.as_tensor(curve)
    if not c.is_floating_point():
        c = c.double()
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"curve must be (B, K) with K >= 2 points, got {tuple(c.shape)}")
    if not torch.isfinite(c).all():
        raise ValueError("curve contains NaN or infinite values")
    return torch.trapezoid(c, dx=1.0 / (c.shape[1] - 1), dim=1)


def rank_correlation(a, b) -> np.ndarray:
    """Spearman's rank correlation of each row of ``a`` with the same row of ``b``: ``(B,)``.

    Ties get their average rank (as in ``scipy.stats.spearmanr``); a row that is
    constant in ``a`` or ``b`` has no correlation and gives NaN.
    """
    from scipy.stats import rankdata

    x = a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)
    y = b.detach().cpu().numpy() if torch.is_tensor(b) else np.asarray(b)
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise TypeError(f"a and b must be numeric, got {x.dtype} and {y.dtype}")
    if x.ndim != 2 or x.shape != y.shape or x.shape[1] < 2:
        raise ValueError(f"a and b must both be (B, K) with K >= 2 and the same shape, got "
                         f"{x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("a or b contains NaN or infinite values")
    rx = rankdata(x, axis=1) - (x.shape[1] + 1) / 2
    ry = rankdata(y, axis=1) - (x.shape[1] + 1) / 2
    num = (rx * ry).sum(1)
    den = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
