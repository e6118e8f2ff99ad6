"""Pulling the answers out of a notebook: answer cells, the check calls in them, what they reference.

:func:`check_call` is the one detector of a check call, used by the copier (which finds an
exercise's checks in its solution) and by the grader (which removes a student's own check
calls before running an answer cell). A check call is a top-level statement that *is* the
call: ``assert checks.check_x(f)``, ``checks.check_x(f)`` or ``check_x(f)``, with ``check_x``
a name in :data:`utils.checks.ALL_CHECKS`. Nothing else is one: a student's helper named
``check_something``, or a function whose body calls a check, stays in the answer.
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Collection
from pathlib import Path

__all__ = ["check_names", "check_call", "check_calls", "strip_check_calls", "read_notebook", "answer_cells",
           "is_untouched", "only_comments", "definitions", "reference_uses"]


@functools.cache
def check_names() -> frozenset[str]:
    """The names of every check, from :data:`utils.checks.ALL_CHECKS`."""
    from utils.checks import ALL_CHECKS

    return frozenset(ALL_CHECKS)


def check_call(stmt: ast.stmt, names: Collection[str] | None = None) -> tuple[str, str | None] | None:
    """``(check, function)`` if ``stmt`` is itself a call of a check, else ``None``.

    ``function`` is the name passed as the first argument (``None`` when it is not a plain
    name, e.g. a lambda). ``names`` defaults to :func:`check_names`.
    """
    names = check_names() if names is None else names
    if isinstance(stmt, ast.Assert):
        node = stmt.test
    elif isinstance(stmt, ast.Expr):
        node = stmt.value
    else:
        return None
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in names:
        return None
    first = node.args[0] if node.args else None
    return name, (first.id if isinstance(first, ast.Name) else None)


def check_calls(tree: ast.Module, names: Collection[str] | None = None) -> list[tuple[str, str]]:
    """``(check, function)`` of the top-level check calls in ``tree`` that name a function, in order."""
    found = []
    for stmt in tree.body:
        call = check_call(stmt, names)
        if call is not None and call[1] is not None and call not in found:
            found.append(call)
    return found


def strip_check_calls(tree: ast.Module, names: Collection[str] | None = None) -> ast.Module:
    """``tree`` without its top-level check calls (changed in place and returned)."""
    tree.body = [stmt for stmt in tree.body if check_call(stmt, names) is None]
    return tree


def read_notebook(path: Path):
    """The notebook at ``path``, or ``None`` when it is not a readable notebook (not JSON, not UTF-8...)."""
    import nbformat

    try:
        nb = nbformat.reads(Path(path).read_text(encoding="utf-8"), as_version=4)
    except Exception:  # not JSON, not a notebook, not UTF-8: the file cannot be graded
        return None
    return nb if isinstance(nb.get("cells"), list) else None


def answer_cells(nb) -> dict[str, list[str]]:
    """Exercise label -> the sources of the code cells tagged ``metadata.tful.exercise`` with it."""
    found: dict[str, list[str]] = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("tful", {})
        label = meta.get("exercise") if isinstance(meta, dict) else None
        if cell.get("cell_type") == "code" and isinstance(label, str):
            src = cell.get("source", "")
            found.setdefault(label, []).append(src if isinstance(src, str) else "".join(src))
    return found


def _normalise(source: str) -> str:
    lines = [line.rstrip() for line in source.strip().splitlines()]
    return "\n".join(line for line in lines if line)


def only_comments(source: str) -> bool:
    """Whether ``source`` holds nothing but comments and blank lines."""
    return all(not line.strip() or line.strip().startswith("#") for line in source.splitlines())


def is_untouched(cells: list[str], stub: str) -> bool:
    """Whether an answer is still the stub it came with (up to blank lines and trailing spaces), or only comments."""
    source = "\n".join(cells)
    return _normalise(source) == _normalise(stub) or only_comments(source)


def definitions(tree: ast.Module) -> list[ast.stmt]:
    """Imports, functions, classes and literal constants: what later answers may reuse."""
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            keep.append(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            try:
                ast.literal_eval(node.value)
                keep.append(node)
            except ValueError:
                pass
    return keep


# --------------------------------------------------------------------------- calls of the book's code

def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _bind(stmt: ast.stmt, names: dict[str, str | None]) -> None:
    """Record what ``stmt`` binds: an import binds a dotted path, anything else hides the name."""
    if isinstance(stmt, ast.Import):
        for a in stmt.names:
            if a.asname:
                names[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                names[top] = top
    elif isinstance(stmt, ast.ImportFrom):
        for a in stmt.names:
            if a.name != "*":
                names[a.asname or a.name] = f"{stmt.module}.{a.name}" if stmt.module and not stmt.level else None
    elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        names[stmt.name] = None
    else:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names[node.id] = None


def _book_object(path: str):
    """The object at dotted ``path`` inside the book's package ``utils`` (importing its modules), or ``None``."""
    parts = path.split(".")
    if parts[0] != "utils":
        return None
    obj, i = None, len(parts)
    while i > 0:
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            i -= 1
    if obj is None:
        return None
    for part in parts[i:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            return None
    return obj


def _book_name(obj) -> str | None:
    """``utils.x.f`` if ``obj`` is a function or class of the book's package (not a module, not a check)."""
    import types

    if obj is None or isinstance(obj, types.ModuleType):
        return None
    module = getattr(obj, "__module__", None) or ""
    if module != "utils" and not module.startswith("utils."):
        return None
    if module.startswith("utils.checks"):
        return None
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def reference_uses(setup: str, before: list[str], cells: list[str], function: str) -> tuple[list[str], bool]:
    """The book's functions that the student's ``function`` calls, and whether it does nothing else.

    Read from the source alone, in the grader's process: a name refers to the book when the
    chapter's setup or the student's answers import it from ``utils`` (and nothing rebinds it
    later); the book's modules are imported here to name the object they hold.
    """
    names: dict[str, str | None] = {}
    node = None
    for source in [setup, *before, *cells]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == function:
                node = stmt
            _bind(stmt, names)
    if node is None:
        return [], False
    local = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    inner = dict(names)
    for stmt in ast.walk(node):
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            _bind(stmt, inner)
            local -= {a.asname or a.name.split(".")[0] for a in stmt.names}

    def resolve(expr) -> str | None:
        chain = _dotted(expr)
        if not chain or chain[0] in local or not inner.get(chain[0]):
            return None
        return _book_name(_book_object(".".join([inner[chain[0]], *chain[1:]])))

    uses = []
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            name = resolve(call.func)
            if name and name not in uses:
                uses.append(name)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    only = (len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Call)
            and resolve(body[0].value.func) is not None)
    return uses, only
