"""Auto-checks for the ssl exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
