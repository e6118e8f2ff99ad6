"""Auto-checks for exercises: a student's function against the reference on fresh random cases.

Every check prints one clear line, a pass or a hint, and returns ``True``/``False``.
:func:`run_check` is the one runner; each topic's checks live in a submodule.
"""

from .clustering import *  # noqa: F403
from .core import *  # noqa: F403
from .dec import *  # noqa: F403
from .evaluation import *  # noqa: F403
from .gan import *  # noqa: F403
from .ssl import *  # noqa: F403
from .vae import *  # noqa: F403
