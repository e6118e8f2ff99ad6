"""Shared facts about the repository for the tests."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import yaml

from tools import run_record

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BUILD = ROOT / "_build"
HTML = BUILD / "html"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [ch["file"] for ch in part.get("chapters", [])]
    return files


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def budget(path: Path) -> float:
    """The notebook's budget (:func:`tools.run_record.budget`); every chapter must declare one."""
    value = run_record.budget(path)
    assert value is not None, f"{path.name} declares no budget: set metadata.tful.budget_seconds"
    return value


def book_extension(module: str = "tful_book"):
    """A module of the book's Sphinx extension (book/_ext/<module>.py), for its helpers."""
    folder = str(ROOT / "book" / "_ext")
    if folder not in sys.path:
        sys.path.insert(0, folder)   # as Sphinx does for the book's local extensions
    return importlib.import_module(module)
