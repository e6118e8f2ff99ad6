"""Auto-checks for the vae exercises (see :func:`utils.checks.run_check`)."""

__all__: list[str] = []
