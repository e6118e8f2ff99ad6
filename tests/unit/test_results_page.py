"""The Results page's headline table (book/data/headlines.yml) and the helpers that draw it.

The table is checked against each notebook's source, so that it cannot drift silently from the
asserts it quotes: the glue name is glued there, every bar's assert is in a code cell verbatim,
and that assert mentions the bar (its number, or the other glued number it compares with) and
the headline number itself.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import pytest

from tests.helpers import NOTEBOOKS, ROOT, book_extension, load_notebook

HEADLINES = ROOT / "book" / "data" / "headlines.yml"


tb = book_extension("tful_headlines")
figures = book_extension("tful_figures")
ROWS = tb.load_headlines(HEADLINES)
ROW_IDS = [f"{h.chapter[:2]}-{h.glue}" for h in ROWS]


def _code(chapter: str) -> str:
    nb = load_notebook(ROOT / "notebooks" / f"{chapter}.ipynb")
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


class _NoCasts(ast.NodeTransformer):
    """``float(x)`` and ``int(x)`` read as ``x``: a glue call often converts what the assert uses."""

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("float", "int") and len(node.args) == 1:
            return node.args[0]
        return node


def _strip_casts(node: ast.expr) -> ast.expr:
    return _NoCasts().visit(node)


def _glues(code: str) -> tuple[dict[str, ast.expr], list[re.Pattern]]:
    """Literal glue names with the expression glued, and patterns for names built by f-strings."""
    literal: dict[str, ast.expr] = {}
    patterns: list[re.Pattern] = []
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glue"
                and len(node.args) >= 2):
            continue
        name = node.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            literal.setdefault(name.value, _strip_casts(node.args[1]))
        elif isinstance(name, ast.JoinedStr):
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in name.values]
            patterns.append(re.compile("".join(parts)))
    return literal, patterns


def _mentions(expr: ast.expr, assert_text: str) -> bool:
    """Whether the assert uses the glued expression (or, for a table lookup, the same keys)."""
    said = ast.unparse(ast.parse(assert_text))
    candidates = [ast.unparse(expr)]
    if isinstance(expr, ast.Subscript):
        index = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
        candidates.append(", ".join(ast.unparse(e) for e in index))
    return any(c in said for c in candidates)


def _number_in(literal: str, text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(literal)}(?![\w.])", text) is not None


def test_every_chapter_has_two_to_four_headlines():
    by_chapter = {p.stem: 0 for p in NOTEBOOKS}
    for h in ROWS:
        assert h.chapter in by_chapter, f"{HEADLINES.name}: {h.chapter} is not a notebook in notebooks/"
        by_chapter[h.chapter] += 1
    for chapter, n in by_chapter.items():
        assert 2 <= n <= 4, (f"notebooks/{chapter}.ipynb has {n} headline numbers in "
                             f"book/data/headlines.yml; give it 2 to 4 (see the file's header)")


@pytest.mark.parametrize("h", ROWS, ids=ROW_IDS)
def test_headline_matches_its_notebook(h):
    code = _code(h.chapter)
    literal, patterns = _glues(code)
    named = h.glue in literal or f'"{h.glue}"' in code or any(p.fullmatch(h.glue) for p in patterns)
    assert named, f"{h.chapter} never glues {h.glue!r}"
    for b in h.baselines:
        if b.glue is not None:
            other = b.chapter or h.chapter
            o_literal, o_patterns = _glues(_code(other))
            assert (b.glue in o_literal or f'"{b.glue}"' in _code(other)
                    or any(p.fullmatch(b.glue) for p in o_patterns)), f"{other} never glues {b.glue!r}"
    for bar in h.bars:
        where = f"{h.chapter}/{h.glue}, bar {bar.op} {bar.bar}"
        assert bar.assert_text in code, f"{where}: the notebook has no line {bar.assert_text!r}"
        assert f" {bar.op} " in bar.assert_text, f"{where}: the assert does not compare with {bar.op}"
        if bar.name is None:
            assert _number_in(bar.bar, bar.assert_text), f"{where}: {bar.bar} is not in {bar.assert_text!r}"
        else:
            m = tb._RELATIVE.match(bar.bar)
            if m["factor"]:
                assert f"{m['factor']} *" in bar.assert_text, f"{where}: no '{m['factor']} *' in the assert"
            if m["offset"]:
                assert f"{m['sign']} {m['offset']}" in bar.assert_text, \
                    f"{where}: no '{m['sign']} {m['offset']}' in the assert"
            if bar.name in literal:
                assert _mentions(literal[bar.name], bar.assert_text), \
                    f"{where}: the assert does not use {ast.unparse(literal[bar.name])} (glued as {bar.name})"
        if h.glue in literal:
            assert _mentions(literal[h.glue], bar.assert_text), \
                f"{where}: the assert does not use {ast.unparse(literal[h.glue])} (glued as {h.glue})"


def test_headline_descriptions_are_sentences():
    for h in ROWS:
        assert h.description.endswith("."), f"{h.glue}: the description should be one plain sentence"
        assert len(h.description) < 260, f"{h.glue}: the description is too long for the table"


# -- the file's validation ------------------------------------------------------------------------

GOOD = {"chapter": "01_x", "glue": "a", "label": "A", "description": "An a.", "format": ".3f",
        "bars": [{"op": ">", "bar": "b + 0.1", "assert": "assert a > b + 0.1"}],
        "baselines": [{"label": "B", "glue": "b"}]}


def _load(tmp_path, entries):
    import yaml

    path = tmp_path / "headlines.yml"
    path.write_text(yaml.safe_dump(entries))
    return tb.load_headlines(path)


def test_load_headlines_reads_a_good_entry(tmp_path):
    (h,) = _load(tmp_path, [GOOD])
    assert h.bars[0].name == "b" and h.bars[0].offset == pytest.approx(0.1)
    assert h.show(0.5) == "0.500" and h.show(None) == "–"


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown field"),
    ({"label": "x" * 30}, "longer than"),
    ({"format": "%d"}, "format"),
    ({"scale": "sqrt"}, "scale"),
    ({"description": ""}, "description must be"),
    ({"bars": [{"op": "=>", "bar": "1", "assert": "assert a => 1"}]}, "op must be"),
    ({"bars": [{"op": ">", "bar": 0.8, "assert": "assert a > 0.8"}]}, "quote numbers"),
    ({"bars": [{"op": ">", "bar": "0.8", "assert": "a > 0.8"}]}, "assert must be"),
    ({"bars": [{"op": ">", "bar": "c", "assert": "assert a > c"}]}, "must also be a baseline"),
    ({"bars": [{"op": ">", "bar": "b ** 2", "assert": "assert a > b ** 2"}]}, "bar must be a number"),
    ({"baselines": [{"label": "B", "glue": "b", "value": 1.0}]}, "exactly one of"),
    ({"baselines": [{"label": "B", "value": "high"}]}, "value must be a number"),
    ({"baselines": [{"label": "B", "text": "t", "chapter": "02_y"}]}, "chapter is only"),
])
def test_load_headlines_rejects_mistakes(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        _load(tmp_path, [{**GOOD, **change}])


def test_load_headlines_rejects_a_duplicate_and_a_non_list(tmp_path):
    with pytest.raises(ValueError, match="listed twice"):
        _load(tmp_path, [GOOD, GOOD])
    with pytest.raises(ValueError, match="a list of entries"):
        _load(tmp_path, {"chapter": "01_x"})


@pytest.mark.parametrize("bar, expected", [
    ("0.80", (None, 0.8)), ("1e-6", (None, 1e-6)), ("b", ("b", 2.0)), ("b - 0.03", ("b", 1.97)),
    ("3 * b", ("b", 6.0)), ("2 * b + 1", ("b", 5.0)),
])
def test_bar_value(bar, expected):
    parsed = tb.parse_bar("<", bar, "assert x < y", "test")
    assert parsed.name == expected[0]
    assert parsed.value({"b": 2.0}.get) == pytest.approx(expected[1])
    assert parsed.holds(0.0, 1.0) and not parsed.holds(1.0, 1.0)


# -- resolving against a build --------------------------------------------------------------------

def _results(**chapters):
    return {stem: {"title": stem, "docname": f"notebooks/{stem}", "metrics": metrics}
            for stem, metrics in chapters.items()}


def test_resolve_reports_a_missing_chapter_and_a_missing_glue(tmp_path):
    (h,) = _load(tmp_path, [GOOD])
    (r,) = tb.resolve_headlines([h], _results(**{"01_x": {"a": 0.9, "b": 0.5}}))
    assert r.value == 0.9 and r.bars[0][1] == pytest.approx(0.6) and r.missing == []
    (r,) = tb.resolve_headlines([h], _results(**{"01_x": {"b": 0.5}}))
    assert r.value is None and r.missing == ["01_x glues no number named 'a'"]
    (r,) = tb.resolve_headlines([h], _results(**{"02_y": {}}))
    assert r.value is None and any("not in this build" in m for m in r.missing)


def test_resolve_reads_the_sweep_and_other_chapters(tmp_path):
    entry = {**GOOD, "baselines": [{"label": "B", "glue": "b"}, {"label": "C", "glue": "c", "chapter": "02_y"}]}
    (h,) = _load(tmp_path, [entry])
    sweep = {"metrics": {"01_x": {"a": {"mean": 0.8, "min": 0.7, "max": 0.9, "n": 3}}}}
    (r,) = tb.resolve_headlines([h], _results(**{"01_x": {"a": 0.9, "b": 0.5}, "02_y": {"c": 7.0}}), sweep)
    assert [v for _, v in r.baselines] == [0.5, 7.0] and r.spread["n"] == 3


def test_bar_text():
    bars = (tb.parse_bar(">=", "b + 0.1", "assert a >= b + 0.1", "t"),
            tb.parse_bar("<", "1e-6", "assert a < 1e-6", "t"))
    h = tb.Headline("01_x", "a", "A", "An a.", ".2f", bars=bars, baselines=(tb.Baseline("raw pixels", glue="b"),))
    assert tb.bar_text(h, h.bars[0], 0.75) == "≥ raw pixels + 0.1 (0.75)"
    assert tb.bar_text(h, h.bars[1], 1e-6) == "< 1e-6"


# -- figures --------------------------------------------------------------------------------------

def _opaque_white_png(path: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    if img.shape[2] == 4:
        assert img[..., 3].min() == 1.0, f"{path.name} is partly transparent (unreadable in dark mode)"
    assert (img[0, 0, :3] == 1.0).all() and (img[-1, -1, :3] == 1.0).all(), f"{path.name}: background not white"


def test_figures_draw_without_warnings_on_white(tmp_path):
    rows = tb.resolve_headlines(ROWS, _fake_results(), {"metrics": {}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.plot_headlines(rows, tmp_path / "bars.png")
        figures.plot_times([{"title": "1. A", "seconds": 20.0, "book_cold": 20.0, "cold": 25.0, "warm": 9.0,
                        "warm_derived": True, "budget": 60},
                       {"title": "2. B", "seconds": 15.0, "book_cold": None, "cold": None, "warm": None,
                        "warm_derived": False, "budget": None}], tmp_path / "times.png")
    _opaque_white_png(tmp_path / "bars.png")
    _opaque_white_png(tmp_path / "times.png")


def _fake_results() -> dict:
    """Every number the headline table needs, including zeros on log axes."""
    metrics: dict[str, dict[str, float]] = {}
    for h in ROWS:
        metrics.setdefault(h.chapter, {})[h.glue] = 0.0 if h.scale == "log" else 0.5
        for b in h.baselines:
            if b.glue:
                metrics.setdefault(b.chapter or h.chapter, {})[b.glue] = 0.25
    return _results(**metrics)


# -- the run-time table ---------------------------------------------------------------------------

def test_timing_section_shows_each_notebooks_model_origins(tmp_path):
    from types import SimpleNamespace

    from tools.run_record import Record

    page_module = book_extension("tful_results_page")

    def event(kind, name, file, seconds):
        return {"name": name, "file": file, "event": kind, "waited_seconds": 0.0, "train_seconds": seconds}

    records = {"07_transformer_vae": Record.from_events(30.0, [event("shipped", "vae", "vae.safetensors", 900.0),
                                                                event("trained", "vae", "vae-1.pt", 12.0)]),
               "09_evaluating_generative_models": Record.from_events(20.0, [event("loaded", "vae", "vae-1.pt", 12.0)]),
               "01_attention_from_scratch": None}
    page = object.__new__(page_module._Page)
    page.app = SimpleNamespace(builder=SimpleNamespace(get_relative_uri=lambda here, there: f"{there}.html"),
                               env=SimpleNamespace(doc2path=lambda docname: ROOT / f"{docname}.ipynb"))
    page.docname, page.images = "book/results", tmp_path
    page.results = {stem: {"title": f"Chapter {stem[:2]}", "docname": f"notebooks/{stem}", "seconds": 30.0,
                           "record": None if rec is None else rec.to_dict()} for stem, rec in records.items()}
    nodes_out = page.timing_section()
    table = next(n for n in nodes_out if "results-timing" in n.get("classes", []))
    rows = {row.astext().split("\n")[0]: row.astext().split("\n\n") for row in table.findall(
        lambda n: n.tagname == "row")}
    # columns: notebook, seconds, state, in a cold book run, alone cold, warm, then a line per origin
    assert rows["Chapter 07"][1:] == ["30.0", "cold", "–", "30.0", "18.0 (derived)", "shipped: vae",
                                      "trained now: vae"]   # the shipped VAE's 900 s are charged nowhere
    assert rows["Chapter 09"][1:] == ["30.0", "warm", "–", "32.0", "20.0", "from the cache: vae"]
    assert rows["Chapter 01"][1:] == ["30.0", "unknown", "–", "–", "–", "–"]   # no run record: no book total
    assert (tmp_path / "results-times.png").exists()
    text = " ".join(n.astext() for n in nodes_out)
    assert "Executed by the book build itself, without a run record" in text and "Chapter 01" in text
