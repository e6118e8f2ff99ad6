"""Chapter 7's cure ablation: the early epochs of the VAE recipe with each cure alone and each removed.

Each variant is ``vae.VAE_CONFIG`` with the per-token projection of ``z``, the KL warm-up
and free bits switched on or off, trained for the first :data:`EPOCHS` epochs of the full
schedule (``train_vae(..., stop_after=EPOCHS)``) on the digits' training split, with the
recipe's seed, on one thread. The two corner cases are the chapter's own runs: the
collapsing run (no cure) and the cached VAE (all three), so they are not repeated here.
The histories go to ``book/data/vae_ablation.json`` with a hash of the design (:func:`fingerprint`)
and the losses of each variant's first optimiser steps (:func:`first_losses`);
``tests/unit/test_vae_ablation.py`` fails when the file is stale. It moves about a minute of
training out of the chapter's time budget.

Run ``python -m tools.vae_ablation`` (``--jobs 2`` runs two variants at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "data" / "vae_ablation.json"
EPOCHS = 7
#: variant name -> (per-token projection, KL warm-up, free bits)
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "per-token only": (True, False, False),
    "warm-up only": (False, True, False),
    "free bits only": (False, False, True),
    "all but per-token": (False, True, True),
    "all but warm-up": (True, False, True),
    "all but free bits": (True, True, False),
}
#: the code whose change can change the results
#: hashed exactly; the code the runs train through is checked by :func:`first_losses` instead
SOURCES = ("tools/vae_ablation.py",)


def variant_config(name: str):
    from utils import vae

    per_token, warm, free_bits = VARIANTS[name]
    base = vae.VAE_CONFIG
    return dataclasses.replace(base, z_to_tokens="per_token" if per_token else "shared",
                               warmup_epochs=base.warmup_epochs if warm else 0,
                               free_bits=base.free_bits if free_bits else 0.0)


def first_losses() -> dict[str, list[float]]:
    """The first optimiser steps' losses of every variant (see :mod:`tools.first_steps`)."""
    import torch

    from tools.first_steps import first_losses as losses_of
    from utils import data, vae

    x = torch.tensor(data.digits_split()[0])
    return {name: losses_of(lambda name=name: vae.train_vae(variant_config(name), x, stop_after=EPOCHS))
            for name in VARIANTS}


def fingerprint() -> str:
    """A hash of :data:`SOURCES`, the recipe's config, the variants and the number of epochs."""
    from utils import vae

    h = hashlib.sha256()
    for rel in SOURCES:
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    spec = {"config": dataclasses.asdict(vae.VAE_CONFIG), "variants": VARIANTS, "epochs": EPOCHS}
    h.update(json.dumps(spec, sort_keys=True).encode())
    return h.hexdigest()[:16]


def run_one(name: str) -> dict:
    """Train one variant for the first EPOCHS epochs; return its per-epoch history."""
    import torch

    from utils import data, vae

    x_train, _, _, _ = data.digits_split()
    _, history = vae.train_vae(variant_config(name), torch.tensor(x_train), stop_after=EPOCHS, desc=name)
    return {"variant": name, "history": {k: [float(v) for v in history[k]]
                                         for k in ("kl", "neg_elbo", "active_units")}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.update({"TFUL_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                       "OPENBLAS_NUM_THREADS": "1", "TFUL_THREADS": "1"})
    for name in ("TFUL_SEED_OFFSET", "TFUL_TRAIN_THREADS"):  # the book's own seeds and thread count
        os.environ.pop(name, None)
    import torch

    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(run_one, VARIANTS))
    payload = {"fingerprint": fingerprint(), "first_losses": first_losses(),
               "torch": torch.__version__, "threads": 1, "epochs": EPOCHS,
               "variants": {k: list(v) for k, v in VARIANTS.items()}, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"{args.out}: {len(runs)} variants")


if __name__ == "__main__":
    main()
