"""Auto-checks for the gan exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
