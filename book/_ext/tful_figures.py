"""The Results page's figures, drawn with matplotlib (without pyplot) on an opaque white background.

* :func:`plot_headlines`: each headline number against its bars and baselines, a block per chapter.
* :func:`plot_times`: each notebook's cold and warm seconds against its budget.

:func:`_draw` turns any warning a figure raises into a Sphinx warning (an error under ``-W``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.util import logging

if TYPE_CHECKING:
    from tful_headlines import Resolved

logger = logging.getLogger(__name__)

BAR_RED = "#b2182b"
VALUE_BLUE = "#2166ac"


def _limits(xs: list[float], log: bool) -> tuple[float, float]:
    if log:
        pos = [x for x in xs if x > 0]
        if not pos:
            return 1e-3, 1.0
        lo, hi = min(pos) / 4, max(pos) * 4
        if hi / lo < 1e3:   # at least three decades, so that the axis has major ticks
            widen = math.sqrt(1e3 / (hi / lo))
            lo, hi = lo / widen, hi * widen
        return lo, hi
    lo, hi = min(xs), max(xs)
    pad = 0.15 * (hi - lo) if hi > lo else 0.1 * (abs(hi) or 1.0)
    return lo - pad, hi + pad


def _panel(ax, row: Resolved) -> None:
    h = row.headline
    log = h.scale == "log"
    points = [("measured", row.value)] + [(b.label, v) for b, v in row.baselines if v is not None]
    thresholds = [(b, v) for b, v in row.bars if v is not None]
    xs = [v for _, v in points if v is not None] + [v for _, v in thresholds]
    if row.spread:
        xs += [row.spread["min"], row.spread["max"]]
    if not xs:
        ax.set_axis_off()
        return
    lo, hi = _limits(xs, log)
    if log:
        from matplotlib.ticker import LogLocator, NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(numticks=6))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lo, hi)
    n = len(points)
    ax.set_ylim(n - 0.4, -0.6)
    for b, v in thresholds:   # the side that would fail the assert, shaded
        fail = (lo, v) if b.op in (">", ">=") else (v, hi)
        ax.axvspan(*fail, color=BAR_RED, alpha=0.09, lw=0)
        ax.axvline(v, color=BAR_RED, ls="--", lw=1.3)
    if row.spread and row.spread.get("n", 0) > 1:
        ax.hlines(0, row.spread["min"], row.spread["max"], color=VALUE_BLUE, lw=6, alpha=0.3,
                  label="sweep range")
    for i, (_, v) in enumerate(points):
        if v is None:
            continue
        x, marker = (v, "o" if i == 0 else "D")
        if log and v <= 0:
            x, marker = lo, "<"
        ax.plot([x], [i], marker=marker, ms=8 if i == 0 else 6, ls="none",
                color=VALUE_BLUE if i == 0 else "0.45", zorder=3)
        text = "0" if (log and v <= 0) else h.show(v)
        ax.annotate(text, (x, i), xytext=(0, 6), textcoords="offset points", ha="center",
                    va="bottom", fontsize=7.5, color=VALUE_BLUE if i == 0 else "0.3")
    ax.set_yticks(range(n), [p for p, _ in points], fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    title = h.label if row.bars else f"{h.label} (not asserted)"
    ax.set_title(title, fontsize=9, loc="left")


def plot_headlines(rows: list[Resolved], path: Path, columns: int = 2) -> None:
    """Small multiples: each headline number against its bars and baselines, a block per chapter.

    Laid out by hand in inches (a fixed room for the row labels left of each panel), which is
    much faster than matplotlib's constrained layout for this many axes.
    """
    from matplotlib.figure import Figure

    chapters: dict[str, list[Resolved]] = {}
    for r in rows:
        chapters.setdefault(r.headline.chapter, []).append(r)
    width, labels, gap, top = 9.5, 1.7, 0.25, 0.4   # inches
    panel_w = (width - columns * labels - (columns - 1) * gap - 0.15) / columns
    title_h, panel_title_h, ticks_h = 0.28, 0.25, 0.33
    layout = []   # (kind, y from the top in inches, payload)
    y = top
    for group in chapters.values():
        layout.append(("title", y, group[0].title))
        y += title_h
        for i in range(0, len(group), columns):
            line = group[i:i + columns]
            axis_h = 0.22 * max(1 + len(r.baselines) for r in line) + 0.1
            layout.append(("line", y + panel_title_h, (line, axis_h)))
            y += panel_title_h + axis_h + ticks_h
    height = y + 0.05
    fig = Figure(figsize=(width, height), facecolor="white")
    for kind, y0, payload in layout:
        if kind == "title":
            fig.text(0.1 / width, 1 - (y0 + 0.05) / height, payload, ha="left", va="top",
                     fontsize=10.5, fontweight="bold")
            continue
        line, axis_h = payload
        for j, row in enumerate(line):
            left = labels + j * (panel_w + labels + gap)
            ax = fig.add_axes((left / width, 1 - (y0 + axis_h) / height, panel_w / width, axis_h / height))
            _panel(ax, row)
    fig.legend(handles=_headline_legend(), loc="upper center", ncols=5, fontsize=8, frameon=False)
    fig.savefig(path, dpi=100, facecolor="white", transparent=False)


def _headline_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [Line2D([], [], marker="o", ls="none", color=VALUE_BLUE, ms=7, label="this build"),
            Patch(color=VALUE_BLUE, alpha=0.3, label="range over the sweep"),
            Line2D([], [], marker="D", ls="none", color="0.45", ms=5, label="baseline"),
            Line2D([], [], ls="--", color=BAR_RED, label="bar (assert)"),
            Patch(color=BAR_RED, alpha=0.09, label="would fail the assert")]


def plot_times(rows: list[dict], path: Path) -> None:
    """Horizontal bars: each notebook's cold seconds (in a book run, alone) and warm seconds, and its budget.

    ``rows``: dicts with title, seconds, book_cold, cold, warm, warm_derived, budget (None: unknown).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(rows)
    fig = Figure(figsize=(9.5, 1.7 + 0.55 * n), facecolor="white", layout="constrained")
    ax = fig.subplots()
    h = 0.27
    styles = {"book_cold": ({"color": VALUE_BLUE}, -h),
              "cold": ({"color": "#4393c3"}, 0.0),
              "warm": ({"color": "#b8d8eb"}, h)}
    for i, r in enumerate(rows):
        for key, (style, dy) in styles.items():
            if r[key] is None:
                continue
            kw = dict(style)
            if key == "warm" and r["warm_derived"]:
                kw.update(hatch="///", edgecolor="#4393c3", lw=0.0)
            ax.barh(i + dy, r[key], h, **kw)
            ax.text(r[key], i + dy, f" {r[key]:.0f}", va="center", fontsize=7)
        if r["cold"] is None and r["seconds"] is not None:   # no run record: only this build's time
            ax.barh(i, r["seconds"], h, color="0.7")
            ax.text(r["seconds"], i, f" {r['seconds']:.0f}", va="center", fontsize=7)
        if r["budget"] is not None:
            ax.plot([r["budget"]] * 2, [i - 0.45, i + 0.45], color="black", lw=1.5)
    ax.set_yticks(range(n), [r["title"] for r in rows], fontsize=8.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel("seconds", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [Patch(color=VALUE_BLUE, label="cold, in a book run from an empty model cache"),
               Patch(color="#4393c3", label="cold, alone: training every model it uses"),
               Patch(color="#b8d8eb", label="warm: every model cached (measured)"),
               Patch(facecolor="#b8d8eb", edgecolor="#4393c3", hatch="///", lw=0.0,
                     label="warm, derived: working time minus recorded training time"),
               Patch(color="black", label="budget (for the cold book run)")]
    if any(r["cold"] is None and r["seconds"] is not None for r in rows):
        handles.append(Patch(color="0.7", label="this build's time (no run record: neither cold nor warm)"))
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    fig.savefig(path, dpi=100, facecolor="white", transparent=False)


def _draw(plot, *args) -> None:
    """Run a plotting function; any warning it raises becomes a Sphinx warning (an error under -W)."""
    import matplotlib

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with matplotlib.rc_context({"font.family": "DejaVu Sans", "svg.fonttype": "none"}):
            plot(*args)
    for w in caught:
        logger.warning(f"Results page figure: {w.category.__name__}: {w.message}")

