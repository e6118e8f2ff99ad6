"""Auto-checks for the anomaly-detection exercises (see :func:`utils.checks.run_check`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..anomaly import distance_profile
from .core import CheckResult, Spec, defined_by

__all__ = ["check_distance_profile"]


def _profile_case(rng):
    n, m = int(rng.integers(20, 120)), int(rng.integers(3, 20))
    series = np.cumsum(rng.normal(size=n)) * rng.uniform(0.5, 20.0) + rng.uniform(-100, 100)
    start = int(rng.integers(0, n - m + 1))
    query = series[start:start + m] * rng.uniform(0.2, 5.0) + rng.normal(scale=0.1, size=m)
    return query, series


def _profile_edges():
    rng = np.random.default_rng(12)
    t = np.linspace(0, 6 * np.pi, 90)
    wave = np.sin(t) + 0.05 * rng.normal(size=90)
    # the same shape at another level and scale: distance 0 only with z-normalisation
    ramp = np.concatenate([wave[:45], 50.0 + 10.0 * wave[45:]])
    # an exact copy in a rounded random walk: its correlation with itself rounds to 1 + 1e-15
    walk = np.round(np.cumsum(np.random.default_rng(0).normal(size=60)), 2)
    return [
        ("a series whose second half is the first scaled by 10 and offset by 50", (wave[10:25], ramp)),
        ("the query equals the whole series: one distance, 0", (wave[:30], wave[:30])),
        ("the query is a subsequence: its own distance is 0", (wave[40:52], wave)),
        ("an exact subsequence whose correlation rounds to 1 + 1e-15: without clipping, sqrt gives NaN",
         (walk[20:32], walk)),
        ("a query of 2 points", (np.array([1.0, 3.0]), np.array([5.0, 4.0, 4.5, 9.0, 1.0]))),
    ]


def _distance_profile_spec() -> Spec:
    return Spec("check_distance_profile", distance_profile, _profile_case,
                edge_cases=_profile_edges(), atol=1e-4, rtol=1e-4,
                hint="z-normalise the query and every window (mean 0, population std 1), "
                     "then take Euclidean distances; there are len(series) - m + 1 windows; "
                     "with dot products, d = sqrt(2m (1 - corr)), clip 1 - corr at 0.")


@defined_by(_distance_profile_spec)
def check_distance_profile(student: Callable, *, seed: int | None = None, verbose: bool = True,
                           time_limit: float | None = 10.0) -> CheckResult:
    """Check ``student(query, series) -> distances``, the z-normalised distance profile.

    ``len(series) - len(query) + 1`` distances are expected. Edge cases: a series
    whose second half is the first scaled and offset (raw Euclidean distances fail),
    a query as long as the series (one distance: an off-by-one window count fails),
    a query that is a subsequence (its own distance is 0), an exact copy whose correlation
    rounds above 1 (an unclipped square root gives NaN), and a 2-point query. Constant
    windows (undefined distance) are never passed. Tolerances are 1e-4, so float32 code
    passes while every wrong variant in the tests is off by percents. The time limit only
    applies on the main thread of a Unix process.
    """
    return _distance_profile_spec().run(student, seed=seed, verbose=verbose, time_limit=time_limit)
