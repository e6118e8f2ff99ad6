"""Auto-checks for the clustering exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
