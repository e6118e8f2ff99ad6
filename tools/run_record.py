"""The run record: what one execution of a notebook did, and the times the book derives from it.

One module holds these facts for everything that reads or writes them: the notebook runner
(:mod:`tools.run_notebooks`) writes a :class:`Record` into the book's execution cache beside
each executed notebook; the test plugin (``conftest.py``) checks each notebook's budget with
it; the sweep (:mod:`tools.sweep`) reads the glued numbers with :func:`glued_numbers`; and the
book's Sphinx extension (``book/_ext``) reads the records back for the Results page and
``_build/results.json``.

* **Which models, from where.** A kernel appends one JSON line per model it gets to
  ``$TFUL_RUN_LOG`` (:func:`utils.runtime._log_event`). :func:`models_used` turns them into
  :class:`ModelUse` entries with an origin: ``shipped`` (the repository's ``checkpoints/``,
  trained by ``make checkpoints``), ``cache`` (the model cache, trained by an earlier run) or
  ``trained`` (trained by this run, into the cache).
* **Working, cold and warm time.** A run's *working* time is its wall time minus any wait
  for a model another notebook was training. Its *cold* time adds the recorded training time
  of every model it loaded from the cache: the time it takes alone on an empty cache. Its
  *warm* time is its working time with every cached model already there. A shipped model
  is part of the repository: loading it costs the same in a cold and a warm run, and its
  (long) training time is never charged to a notebook.
* **The budget** of a notebook: ``metadata.tful.budget_seconds``.
* **Glue parsing**: the numbers a notebook glued (``myst_nb.glue``), with one rule.

The model cache's folder is resolved only by :func:`utils.runtime.cache_dir`: the record
carries every training time it needs, so nothing here reads the cache.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Recorded in the execution cache, so that the book can tell who executed a notebook.
RUNNER = "tools.run_notebooks"
#: The record's layout; a record of another version is stale, and its notebook is executed again.
VERSION = 2
#: The whole book's budget: a cold run of every notebook (the wall time of a parallel run from an
#: empty model cache, or else the sum of the notebooks' times in a cold book run).
BOOK_BUDGET_SECONDS = 600

#: A model's origin, by the event a kernel logs when it gets the model.
ORIGIN_OF_EVENT = {"shipped": "shipped", "loaded": "cache", "trained": "trained"}
#: How an origin reads in a table, in the order tables list them.
ORIGIN_TEXT = {"shipped": "shipped", "cache": "from the cache", "trained": "trained now"}


# ---------------------------------------------------------------------------------------------
# The budget
# ---------------------------------------------------------------------------------------------

def tful_metadata(nb) -> dict:
    """A notebook's ``metadata.tful``; ``nb`` is a path or a notebook (``nbformat`` node or dict)."""
    if isinstance(nb, str | Path):
        nb = json.loads(Path(nb).read_text())
    meta = nb.get("metadata", {}).get("tful", {})
    if not isinstance(meta, Mapping):
        raise ValueError(f"metadata.tful must be a mapping, got {type(meta).__name__}")
    return dict(meta)


def budget(nb) -> float | None:
    """A notebook's time budget in seconds (``metadata.tful.budget_seconds``), or None if it has none.

    The budget bounds the notebook's time in a cold run of the whole book; ``make test`` checks
    its working time against it, and the book's tests its cold time in the book run.
    """
    value = tful_metadata(nb).get("budget_seconds")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        where = f"{nb}: " if isinstance(nb, str | Path) else ""
        raise ValueError(f"{where}metadata.tful.budget_seconds must be a positive number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Models: which, and from where
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelUse:
    """One model (or cached result) a notebook got: its file, where it came from, its training time."""

    name: str             #: the recipe or cache name, e.g. "gan"
    file: str             #: e.g. "gan.safetensors" (shipped) or "gan-3f2a….pt" (cache)
    origin: str           #: "shipped", "cache" or "trained" (see ORIGIN_TEXT)
    train_seconds: float  #: how long it took to train, when and wherever it was trained

    def __post_init__(self):
        if self.origin not in ORIGIN_TEXT:
            raise ValueError(f"origin must be one of {list(ORIGIN_TEXT)}, got {self.origin!r}")


def models_used(events: Iterable[Mapping]) -> tuple[ModelUse, ...]:
    """The models a run got, one per file, from the events its kernel logged.

    A file that the run trained and then loaded again counts as trained. Raises a
    ``ValueError`` naming the event when an event is not one the kernels write.
    """
    found: dict[str, ModelUse] = {}
    for event in events:
        kind = event.get("event")
        if kind not in ORIGIN_OF_EVENT:
            raise ValueError(f"unknown run-log event {kind!r} in {dict(event)}; "
                             f"expected one of {sorted(ORIGIN_OF_EVENT)}")
        origin = ORIGIN_OF_EVENT[kind]
        seconds = event.get("train_seconds")
        if origin != "shipped" and not isinstance(seconds, int | float):
            raise ValueError(f"run-log event {dict(event)} has no training time (train_seconds)")
        use = ModelUse(str(event["name"]), str(event["file"]), origin, float(seconds or 0.0))
        if event["file"] not in found or origin == "trained":
            found[event["file"]] = use
    return tuple(sorted(found.values(), key=lambda m: (m.name, m.file)))


def read_events(path: Path) -> list[dict]:
    """The JSON lines of a run log (``$TFUL_RUN_LOG``), in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------

def utils_sha() -> str:
    """A hash of the ``utils`` package's source: outputs made with other code are stale."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "utils").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Record:
    """What one execution of a notebook by the runner did. Stored as :meth:`to_dict`."""

    execution_seconds: float          #: wall time (myst-nb shows it as the notebook's run time)
    waited_seconds: float = 0.0       #: time spent waiting while another notebook trained a model
    models: tuple[ModelUse, ...] = ()
    jobs: int = 1                     #: notebooks that ran at once
    utils_sha: str | None = None      #: :func:`utils_sha` of the code that made the outputs
    run_id: str | None = None         #: one id per batch of notebooks run together
    started: float | None = None      #: ``time.time()`` at the start
    finished: float | None = None

    @classmethod
    def from_events(cls, seconds: float, events: Iterable[Mapping], **fields) -> Record:
        events = list(events)
        waited = sum(float(e.get("waited_seconds") or 0.0) for e in events)
        started = fields.get("started")
        return cls(seconds, waited, models_used(events), **fields,
                   finished=None if started is None else started + seconds)

    # -- models by origin --

    def files(self, origin: str) -> list[str]:
        if origin not in ORIGIN_TEXT:
            raise ValueError(f"origin must be one of {list(ORIGIN_TEXT)}, got {origin!r}")
        return [m.file for m in self.models if m.origin == origin]

    @property
    def trained(self) -> list[str]:
        return self.files("trained")

    def train_seconds(self, origin: str) -> dict[str, float]:
        """The recorded training time of each model of that origin, by file."""
        return {m.file: m.train_seconds for m in self.models if m.origin == origin}

    # -- times --

    @property
    def working_seconds(self) -> float:
        """Wall time minus any wait for a model another notebook was training."""
        return self.execution_seconds - self.waited_seconds

    @property
    def cold_seconds(self) -> float:
        """Time alone on an empty cache: working time plus the training of every model it loaded from the cache."""
        return self.working_seconds + sum(self.train_seconds("cache").values())

    @property
    def warm_seconds(self) -> float:
        """Time with every cached model already there: working time minus what this run trained.

        Measured when the run trained nothing; derived (:attr:`warm_derived`) otherwise.
        """
        return max(self.working_seconds - sum(self.train_seconds("trained").values()), 0.0)

    @property
    def warm_derived(self) -> bool:
        return bool(self.trained)

    @property
    def state(self) -> str:
        """Of the model cache: ``cold`` (trained every cached model it used), ``warm`` (loaded them all),
        ``mixed``, or ``none`` (used no cached model; shipped models do not count, they are the
        same in a cold run and a warm one)."""
        trained, cached = bool(self.trained), bool(self.files("cache"))
        if trained and cached:
            return "mixed"
        return "cold" if trained else "warm" if cached else "none"

    def origin_lines(self) -> list[str]:
        """One line per origin the run's models came from, e.g. ``["shipped: gan, vae", "trained now: dec"]``."""
        lines = []
        for origin, text in ORIGIN_TEXT.items():
            names = sorted({m.name for m in self.models if m.origin == origin})
            if names:
                lines.append(f"{text}: {', '.join(names)}")
        return lines

    def origins_text(self) -> str:
        """``shipped: gan; trained now: dec``, or ``–`` when the run used no model."""
        return "; ".join(self.origin_lines()) or "–"

    # -- storage --

    def to_dict(self) -> dict:
        """The stored record, plus the derived times for a human reader of the JSON."""
        out = {"runner": RUNNER, "version": VERSION, **dataclasses.asdict(self)}
        out["execution_seconds"] = round(self.execution_seconds, 2)
        out["waited_seconds"] = round(self.waited_seconds, 2)
        out["models"] = [{**dataclasses.asdict(m), "train_seconds": round(m.train_seconds, 2)}
                         for m in self.models]
        out["derived"] = {"working_seconds": round(self.working_seconds, 2),
                          "cold_seconds": round(self.cold_seconds, 2),
                          "warm_seconds": round(self.warm_seconds, 2), "warm_derived": self.warm_derived,
                          "state": self.state, **{origin: self.files(origin) for origin in ORIGIN_TEXT}}
        return out

    @classmethod
    def from_dict(cls, data: Mapping | None) -> Record | None:
        """The record stored as ``data``; None when the runner did not write it, or an older runner did."""
        if not data or data.get("runner") != RUNNER or data.get("version") != VERSION:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in names}
        fields["models"] = tuple(ModelUse(**m) for m in data.get("models", []))
        return cls(**fields)

    def is_current(self) -> bool:
        """Whether the outputs were made by today's ``utils`` code."""
        return self.utils_sha == utils_sha()


def records(results: Mapping[str, Mapping]) -> dict[str, Record | None]:
    """``{notebook: Record or None}`` from a build's results (``_build/results.json``), in notebook order."""
    return {stem: Record.from_dict(results[stem].get("record")) for stem in sorted(results)}


# ---------------------------------------------------------------------------------------------
# The book's times, from the records of one build
# ---------------------------------------------------------------------------------------------

def book_cold_times(recs: Mapping[str, Record | None]) -> dict[str, float] | None:
    """Each notebook's seconds in a run of the whole book from an empty model cache.

    Its working time, plus the training time of every model it loaded from the cache that
    no notebook of this build trained (the model was cached before the build), charged to
    the first notebook, in chapter order, that loaded it. Each model counts once, so the sum
    is the time to execute the whole book, one notebook after another, from an empty cache.
    Shipped models cost nothing beyond their load. ``None`` if a notebook has no record.
    """
    if any(r is None for r in recs.values()):
        return None
    trained = {f for r in recs.values() for f in r.trained}
    charged: set[str] = set()
    times = {}
    for stem in sorted(recs):
        extra = 0.0
        for model, seconds in sorted(recs[stem].train_seconds("cache").items()):
            if model not in trained and model not in charged:
                charged.add(model)
                extra += seconds
        times[stem] = recs[stem].working_seconds + extra
    return times


def book_cold_seconds(recs: Mapping[str, Record | None]) -> float | None:
    """Seconds to execute every notebook one after another from an empty model cache."""
    times = book_cold_times(recs)
    return None if times is None else sum(times.values())


def book_cold_wall_seconds(recs: Mapping[str, Record | None]) -> float | None:
    """Wall time of this build's execution, if it ran every notebook in one batch from an empty cache.

    That is the time a reader waits for ``make book`` on a fresh clone. ``None`` when a
    notebook has no record, the notebooks ran in several batches, or some model was in the
    cache before the batch started (shipped models are not in the cache and do not count).
    """
    if not recs or any(r is None or r.started is None for r in recs.values()):
        return None
    if len({r.run_id for r in recs.values()}) != 1:
        return None
    trained = {f for r in recs.values() for f in r.trained}
    if any(f not in trained for r in recs.values() for f in r.files("cache")):
        return None
    return max(r.finished for r in recs.values()) - min(r.started for r in recs.values())


# ---------------------------------------------------------------------------------------------
# Glued numbers
# ---------------------------------------------------------------------------------------------

_NUMPY_SCALAR = re.compile(r"^(?:np|numpy)\.(?:float|int|uint)\d*\((?P<value>.*)\)$")


def glue_number(output: Mapping) -> float | None:
    """The finite number a glue output holds, or None (text, a figure, a bool, NaN, ±inf).

    ``output`` is a glue output of an executed notebook (its data keys carry the glue's
    mime prefix) or of myst-nb's ``<doc>.glue.json`` (the prefix removed). Numpy scalars
    print as ``np.float64(0.9)`` and count as numbers.
    """
    data = output.get("data", {})
    prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
    text = data.get(prefix + "text/plain", data.get("text/plain"))
    if not isinstance(text, str):
        return None
    text = text.strip()
    scalar = _NUMPY_SCALAR.match(text)
    if scalar:
        text = scalar["value"]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def glued_numbers(nb) -> dict[str, float]:
    """Every number an executed notebook glued, by glue name (the last one wins, as in myst-nb)."""
    values = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if meta:
                value = glue_number(out)
                if value is not None:
                    values[meta["name"]] = value
    return values


def glue_file_numbers(glue: Mapping[str, Mapping]) -> dict[str, float]:
    """Every number in myst-nb's ``<doc>.glue.json`` (``{name: output}``), by glue name."""
    return {name: v for name, out in glue.items() if (v := glue_number(out)) is not None}


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ARROW = re.compile(r"^\s*-*>\s*(?P<line>\d+)\s(?P<code>.*)$")


def plain(text: str) -> str:
    """``text`` without terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def arrow_line(trace: str, *, first: bool = False) -> str | None:
    """A line IPython's traceback marks with an arrow (``---> 12 assert …``): the deepest frame's, or
    with ``first`` the outermost one's, which is the line of the notebook's own cell."""
    arrows = [line.strip() for line in plain(trace).splitlines() if "--->" in line]
    return (arrows[0] if first else arrows[-1]) if arrows else None


def failure_line(summary: str, trace: str, cell_index: int) -> str:
    """One line naming a failed run's cell, its line and the error, e.g.
    ``cell 24, line 12 (assert fid < 15): AssertionError: FID 80.2``."""
    where = f"cell {cell_index + 1}" if cell_index >= 0 else "before the first cell"
    arrow = arrow_line(trace, first=True)
    m = _ARROW.match(arrow) if arrow else None
    if m:
        code = m["code"].strip()
        where += f", line {m['line']} ({code[:77] + '…' if len(code) > 78 else code})"
    error = plain(summary).strip().splitlines()
    return f"{where}: {error[0] if error else 'failed'}"
