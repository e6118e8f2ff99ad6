"""Auto-checks for the evaluation exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
