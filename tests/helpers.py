"""Shared facts about the repository for the tests."""

from __future__ import annotations

import json
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
