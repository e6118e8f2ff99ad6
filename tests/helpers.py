"""Shared facts about the repository for the tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BUILD = ROOT / "_build"
HTML = BUILD / "html"
BOOK_BUDGET_SECONDS = 600


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [ch["file"] for ch in part.get("chapters", [])]
    return files


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def budget(path: Path) -> float:
    return load_notebook(path)["metadata"]["tful"]["budget_seconds"]


def book_extension():
    """The book's Sphinx extension module (book/_ext/tful_book.py), for its helpers."""
    spec = importlib.util.spec_from_file_location("tful_book", ROOT / "book" / "_ext" / "tful_book.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tful_book", module)   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return sys.modules["tful_book"]
