"""Freshness of stored training results, by the losses of their first optimiser steps.

A stored ablation (``book/data/*_ablation.json``) is stale when the code it ran through
would now train differently. Hashing that code's source text makes every comment or
docstring edit look like a change; instead, each stored result records the losses of
the first :data:`N` optimiser steps of every run it made (with the book's seeds, on one
thread), and the freshness test re-computes them in a few seconds and compares them with
a relative tolerance (another CPU or torch build may round the last digits differently).
The design of the experiment itself (its configs, seeds, epochs) and the tool's own
source are still hashed exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

N = 4
RTOL = 1e-3


def first_losses(train: Callable[[], object], n: int = N) -> list[float]:
    """The first ``n`` losses of ``train()`` with the book's seeds on one thread; stops after step ``n``."""
    from utils import runtime
    from utils import train as train_mod

    with runtime.book_defaults(), train_mod.first_losses(n, stop=True) as losses, runtime.training():
        train()
    if len(losses) < n:
        raise RuntimeError(f"the run took only {len(losses)} optimiser steps, fewer than {n}")
    return losses


def stale(stored: dict[str, list[float]], today: dict[str, list[float]]) -> list[str]:
    """The runs whose stored first losses differ from today's (or that are missing on either side)."""
    names = sorted(set(stored) | set(today))
    return [k for k in names if k not in stored or k not in today
            or not np.allclose(stored[k], today[k], rtol=RTOL, atol=1e-6)]
