"""Auto-checks for exercises: a student's function against the reference.

Each ``check_*`` runs the function on fixed edge cases (the inputs the exercise is
about) and then on random cases drawn from ``seed`` (a fresh one when ``None``),
and returns a :class:`CheckResult` that is truthy only when every case matched, so
``assert checks.check_softmax(my_softmax)`` fails loudly in a notebook. Its
``status`` is ``ok``, ``wrong`` (a wrong value, NaN, shape or type), ``error`` (it
raised), ``not_attempted`` (it raised ``NotImplementedError``) or ``timeout``
(``time_limit`` seconds for the whole check, enforced on the main thread of a Unix
process only). With ``verbose=True`` (the default) a check prints one line; a
failure names the case, the seed, a call that re-runs it, and a hint. :data:`ALL_CHECKS` maps each check's
name to the function. :func:`run_check` is the one runner; each topic's checks live
in a submodule. Each check is made of a :class:`Spec` (``check.spec()``): its cases,
its reference, and how an output is read and judged, so that the grader can make the
cases and judge the outputs in its own process while the student's code runs in another.
"""

from . import anomaly, attribution, clip, clustering, core, dec, evaluation, gan, ssl, vae
from .anomaly import *  # noqa: F403
from .attribution import *  # noqa: F403
from .clip import *  # noqa: F403
from .clustering import *  # noqa: F403
from .core import *  # noqa: F403
from .dec import *  # noqa: F403
from .evaluation import *  # noqa: F403
from .gan import *  # noqa: F403
from .ssl import *  # noqa: F403
from .vae import *  # noqa: F403

ALL_CHECKS = {name: getattr(module, name)
              for module in (core, ssl, clustering, dec, vae, gan, evaluation, attribution, clip,
                             anomaly)
              for name in module.__all__ if name.startswith("check_")}
"""Every check by name (the function's name, e.g. ``"check_softmax"``), in chapter order."""
