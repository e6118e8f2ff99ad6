"""JupyterLab renders the book's MyST ({exercise}, {glue:text}, citations) through jupyterlab-myst."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def _pin(name: str) -> str:
    m = re.search(rf"^{re.escape(name)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert m, f"requirements.txt does not pin {name} exactly"
    return m.group(1)


def test_jupyterlab_myst_is_installed_at_the_pinned_version():
    package = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-myst" / "package.json"
    assert package.exists(), "jupyterlab-myst is not installed: run make venv"
    assert json.loads(package.read_text())["version"] == _pin("jupyterlab-myst")


def test_jupyterlab_myst_is_enabled_and_compatible():
    jupyter = Path(sys.executable).with_name("jupyter")
    out = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True, text=True,
                         timeout=120, env={"NO_COLOR": "1", "PATH": str(jupyter.parent)})
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((ln for ln in text.splitlines() if "jupyterlab-myst v" in ln), None)
    assert line is not None, text
    # "X" instead of "OK" means the extension does not fit this JupyterLab (e.g. a newer @jupyter/ydoc)
    assert "enabled" in line and "OK" in line, f"{line.strip()}\n{text}"
