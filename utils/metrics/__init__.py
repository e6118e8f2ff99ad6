"""Metrics for clustering and for generative models.

The names here are the stable public API (tests outside the book rely on them):
``cluster_accuracy``, ``evaluate_clustering``, ``frechet_distance``, ``inception_score``.
"""

from .clustering import *  # noqa: F403
from .generative import *  # noqa: F403
