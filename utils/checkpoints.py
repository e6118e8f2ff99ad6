"""Shipped checkpoints: fully trained models stored in the repository, with a card each.

A checkpoint is two files in :func:`shipped_dir` (``checkpoints/`` at the repository root):

* ``<name>.safetensors``: the state dict, in the safetensors format (nothing is unpickled);
* ``<name>.json``: its card, which records the recipe name, version and full config, the
  losses of the first optimiser steps (the proof that today's code makes these weights,
  see :func:`utils.models.check_shipped`), the versions and machine it was trained on,
  the training time and per-epoch history, the file's SHA-256 and the metrics measured on
  it when it was made.

:func:`read` verifies the file against its card before it returns a single tensor: a
file that is missing, truncated, altered or not safetensors raises :class:`CheckpointError`
naming the file and the command that regenerates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

__all__ = ["CheckpointError", "shipped_dir", "paths", "sha256", "read_card", "read", "write",
           "machine_facts", "FIRST_STEPS"]

#: how many first optimiser steps a card records and the reproduction check re-computes
FIRST_STEPS = 4


class CheckpointError(RuntimeError):
    """A shipped checkpoint that cannot be trusted (missing, altered, truncated, not safetensors)."""


def shipped_dir() -> Path:
    """``$TFUL_CHECKPOINTS``, else ``checkpoints/`` at the repository root."""
    env = os.environ.get("TFUL_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def paths(name: str) -> tuple[Path, Path]:
    """``(weights, card)`` paths of the shipped checkpoint ``name``."""
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"checkpoint name must be alphanumeric with - or _, got {name!r}")
    d = shipped_dir()
    return d / f"{name}.safetensors", d / f"{name}.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _regenerate(name: str) -> str:
    return f"run `make checkpoints NAME={name}` to regenerate it"


def read_card(name: str) -> dict | None:
    """The card of ``name``, or ``None`` when neither file exists."""
    weights, card = paths(name)
    if not card.exists() and not weights.exists():
        return None
    if not card.exists():
        raise CheckpointError(f"{weights} has no card ({card.name} is missing); {_regenerate(name)}")
    try:
        info = json.loads(card.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{card} is not valid JSON ({err}); {_regenerate(name)}") from None
    for key in ("recipe", "version", "config", "sha256", "first_losses"):
        if key not in info:
            raise CheckpointError(f"{card} lacks the field {key!r}; {_regenerate(name)}")
    return info


def read(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The verified state dict and card of the shipped checkpoint ``name``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_card(name)
    weights, _ = paths(name)
    if info is None or not weights.exists():
        raise CheckpointError(f"{weights} is missing; {_regenerate(name)}")
    digest = sha256(weights)
    if digest != info["sha256"]:
        raise CheckpointError(
            f"{weights} does not match its card: SHA-256 {digest[:16]}… instead of "
            f"{info['sha256'][:16]}… (truncated or altered); {_regenerate(name)}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({err}); "
                              f"{_regenerate(name)}") from None
    return state, info


def machine_facts() -> dict:
    """Versions and machine a checkpoint was trained with (recorded, not part of its key)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "cpu": cpu, "machine": platform.machine()}


def write(name: str, state: dict[str, torch.Tensor], card: dict) -> dict:
    """Store ``state`` as ``<name>.safetensors`` and ``card`` (plus the file's SHA-256) beside it.

    Returns the card as written."""
    from safetensors.torch import save_file

    weights, card_path = paths(name)
    weights.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or non-contiguous storage: store independent copies
    state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"recipe": str(card.get("recipe", name))})
    tmp.replace(weights)
    card = {**card, "file": weights.name, "bytes": weights.stat().st_size, "sha256": sha256(weights)}
    card_path.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return card
