"""Auto-checks for the dec exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
