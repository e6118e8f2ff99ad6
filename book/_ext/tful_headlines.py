"""The Results page's headline numbers: ``book/data/headlines.yml``, validated and resolved.

Each entry names a chapter's glued number, what it measures, the bars its notebook asserts
(copied from the assert) and the baselines it is compared with. :func:`load_headlines`
rejects a mistake with a message naming the entry and field; :func:`resolve_headlines` looks
every number up in a build's results (``tful_results.collect_results``) and in the sweep.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from pathlib import Path

HEADLINES = Path("book") / "data" / "headlines.yml"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
OP_TEXT = {">": ">", ">=": "≥", "<": "<", "<=": "≤"}
LABEL_MAX = 24
_NUMBER = re.compile(r"^\d+(\.\d+)?(e[+-]?\d+)?$")
_RELATIVE = re.compile(r"^(?:(?P<factor>\d+(?:\.\d+)?)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)"
                       r"(?:\s*(?P<sign>[+-])\s*(?P<offset>\d+(?:\.\d+)?(?:e[+-]?\d+)?))?$")
_ROW_KEYS = {"chapter", "glue", "label", "description", "format", "unit", "scale", "bars", "baselines"}
_BAR_KEYS = {"op", "bar", "assert"}
_BASELINE_KEYS = {"label", "glue", "chapter", "value", "text"}


@dataclass(frozen=True)
class Bar:
    """One assert on a headline number: ``number <op> <bar>``."""

    op: str
    bar: str            #: as written in the assert ("0.80"), or "name", "name + 0.1", "3 * name"
    assert_text: str    #: the assert statement, exactly as in the notebook
    factor: float = 1.0
    name: str | None = None    #: the other glued number it compares with, if any
    offset: float = 0.0        #: signed

    def value(self, lookup) -> float | None:
        """The threshold; ``lookup(name)`` gives a glued number of the chapter (or None)."""
        if self.name is None:
            return float(self.bar)
        other = lookup(self.name)
        return None if other is None else self.factor * other + self.offset

    def holds(self, number: float, threshold: float) -> bool:
        return OPS[self.op](number, threshold)


@dataclass(frozen=True)
class Baseline:
    """What a headline number is compared with: another glued number, a fixed value or a text."""

    label: str
    glue: str | None = None
    chapter: str | None = None   #: the notebook that glues it; None: the headline's own
    value: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Headline:
    chapter: str
    glue: str
    label: str
    description: str
    format: str
    unit: str = ""
    scale: str = "linear"
    bars: tuple[Bar, ...] = ()
    baselines: tuple[Baseline, ...] = ()

    def show(self, value: float | None) -> str:
        return "–" if value is None else f"{value:{self.format}}{self.unit}"


def parse_bar(op: str, bar: str, assert_text: str, where: str) -> Bar:
    if op not in OPS:
        raise ValueError(f"{where}: op must be one of {sorted(OPS)}, got {op!r}")
    if not isinstance(bar, str) or not bar.strip():
        raise ValueError(f"{where}: bar must be a non-empty string (quote numbers: \"0.80\"), got {bar!r}")
    if not isinstance(assert_text, str) or not assert_text.startswith("assert "):
        raise ValueError(f"{where}: assert must be the notebook's assert statement, got {assert_text!r}")
    text = bar.strip()
    if _NUMBER.match(text):
        return Bar(op, text, assert_text)
    m = _RELATIVE.match(text)
    if m is None:
        raise ValueError(f"{where}: bar must be a number, 'name', 'name + 0.1', 'name - 0.1' or "
                         f"'3 * name', got {bar!r}")
    offset = float(m["offset"] or 0.0) * (-1.0 if m["sign"] == "-" else 1.0)
    return Bar(op, text, assert_text, float(m["factor"] or 1.0), m["name"], offset)


def _check_keys(entry, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = set(entry) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def load_headlines(path: Path) -> list[Headline]:
    """The headline table, validated: a mistake in it is an error naming the entry and field."""
    import yaml

    entries = yaml.safe_load(Path(path).read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    rows: list[Headline] = []
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(entries):
        where = f"{path}: entry {i + 1}"
        _check_keys(e, _ROW_KEYS, where)
        for key in ("chapter", "glue", "label", "description", "format"):
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise ValueError(f"{where}: {key} must be a non-empty string, got {e.get(key)!r}")
        where = f"{path}: {e['chapter']}/{e['glue']}"
        if (e["chapter"], e["glue"]) in seen:
            raise ValueError(f"{where}: listed twice")
        seen.add((e["chapter"], e["glue"]))
        if len(e["label"]) > LABEL_MAX:
            raise ValueError(f"{where}: label {e['label']!r} is longer than {LABEL_MAX} characters")
        try:
            format(1.0, e["format"])
        except ValueError:
            raise ValueError(f"{where}: format {e['format']!r} is not a float format spec") from None
        if e.get("scale", "linear") not in ("linear", "log"):
            raise ValueError(f"{where}: scale must be 'linear' or 'log', got {e['scale']!r}")
        baselines = []
        for j, b in enumerate(e.get("baselines") or []):
            bw = f"{where}: baseline {j + 1}"
            _check_keys(b, _BASELINE_KEYS, bw)
            if not isinstance(b.get("label"), str) or not b["label"].strip():
                raise ValueError(f"{bw}: label must be a non-empty string")
            if len(b["label"]) > LABEL_MAX and b.get("text") is None:   # a row label of the figure
                raise ValueError(f"{bw}: label {b['label']!r} is longer than {LABEL_MAX} characters")
            given = [k for k in ("glue", "value", "text") if b.get(k) is not None]
            if len(given) != 1:
                raise ValueError(f"{bw}: give exactly one of glue, value, text; got {given}")
            if "chapter" in b and "glue" not in b:
                raise ValueError(f"{bw}: chapter is only for a glue baseline")
            if "value" in b and (isinstance(b["value"], bool) or not isinstance(b["value"], int | float)):
                raise ValueError(f"{bw}: value must be a number, got {b['value']!r}")
            baselines.append(Baseline(b["label"], b.get("glue"), b.get("chapter"),
                                      None if b.get("value") is None else float(b["value"]), b.get("text")))
        bars = []
        for j, b in enumerate(e.get("bars") or []):
            bw = f"{where}: bar {j + 1}"
            _check_keys(b, _BAR_KEYS, bw)
            bar = parse_bar(b.get("op"), b.get("bar"), b.get("assert"), bw)
            if bar.name is not None and not any(bl.glue == bar.name and bl.chapter is None for bl in baselines):
                raise ValueError(f"{bw}: {bar.name!r} must also be a baseline of this entry "
                                 "(a glued number of the same chapter), so that it has a label")
            bars.append(bar)
        rows.append(Headline(e["chapter"], e["glue"], e["label"], " ".join(e["description"].split()),
                             e["format"], e.get("unit", ""), e.get("scale", "linear"),
                             tuple(bars), tuple(baselines)))
    return rows


def bar_text(h: Headline, bar: Bar, value: float | None) -> str:
    """``≥ 0.80`` as written in the assert, or ``> raw pixels + 0.1 (0.766)`` for a comparison."""
    if bar.name is None:
        return f"{OP_TEXT[bar.op]} {bar.bar}"
    label = next(b.label for b in h.baselines if b.glue == bar.name and b.chapter is None)
    return f"{OP_TEXT[bar.op]} {bar.bar.replace(bar.name, label)} ({h.show(value)})"


@dataclass
class Resolved:
    """A headline with its numbers from one build (None where the build lacks them)."""

    headline: Headline
    title: str
    docname: str | None
    value: float | None
    bars: list[tuple[Bar, float | None]]
    baselines: list[tuple[Baseline, float | None]]
    spread: dict | None   #: the sweep's {"mean", "min", "max", "n"}, if recorded
    missing: list[str]    #: what the build lacks, as sentences


def resolve_headlines(headlines: list[Headline], results: dict, sweep: dict | None = None) -> list[Resolved]:
    """Look up every headline's value, bars and baselines in ``results`` (see :func:`collect_results`)."""
    out = []
    for h in headlines:
        info = results.get(h.chapter)
        missing = []

        def lookup(name: str, chapter: str | None = None, *, h=h, missing=missing) -> float | None:
            stem = chapter or h.chapter
            if stem not in results:
                missing.append(f"{stem} is not in this build, so {name!r} is missing")
                return None
            value = results[stem]["metrics"].get(name)
            if value is None:
                missing.append(f"{stem} glues no number named {name!r}")
            return value

        value = lookup(h.glue)
        bars = [(b, b.value(lookup)) for b in h.bars]
        baselines = [(b, b.value if b.glue is None else lookup(b.glue, b.chapter)) for b in h.baselines]
        spread = ((sweep or {}).get("metrics", {}).get(h.chapter, {}).get(h.glue))
        out.append(Resolved(h, info["title"] if info else h.chapter, info["docname"] if info else None,
                            value, bars, baselines, spread, sorted(set(missing))))
    return out

