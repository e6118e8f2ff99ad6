"""Chapter 8's stabiliser ablation: train the GAN recipe with one change at a time.

Each variant is ``gan.GAN_CONFIG`` with one field changed (a stabiliser removed, or a
design choice swapped), trained for :data:`EPOCHS` epochs (a short run: the recipe trains
longer) on each of :data:`SEEDS`, on one thread. For every run
it records the wall time of training, the digits-FID and Inception Score of 1,000 samples
of the final generator, the FID after each checkpoint epoch and the largest class share.
The result goes to ``book/data/gan_ablation.json`` with a hash of the design (:func:`fingerprint`)
and the losses of each variant's first optimiser steps (:func:`first_losses`);
``tests/unit/test_gan_ablation.py`` fails when either no longer matches, i.e. when the file is stale.

Run ``python -m tools.gan_ablation`` (about 6 minutes of CPU time; ``--jobs 2`` runs two at once). Each finished run is
written at once, and a rerun keeps the runs that the file already holds for the same
fingerprint, so an interrupted ablation resumes where it stopped..
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "data" / "gan_ablation.json"
SEEDS = (0, 1)
EPOCHS = 10
N_SAMPLES = 1000
CHECKPOINTS = (5, 10)
#: variant name -> the fields changed from ``gan.GAN_CONFIG`` (checkpoints and seed aside)
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "BCE instead of hinge": {"loss": "bce"},
    "no spectral norm": {"spectral_norm": False},
    "no DiffAugment": {"augment": ""},
    "no EMA": {"ema_decay": None},
    "translation instead of cutout": {"augment": "translation"},
    "2x2 discriminator patches": {"disc_patch_size": 2},
    "R1 (gamma 1) added": {"r1_gamma": 1.0},
}
#: the code whose change can change the results
#: hashed exactly; the code the runs train through is checked by :func:`first_losses` instead
SOURCES = ("tools/gan_ablation.py",)


def fingerprint() -> str:
    """A hash of :data:`SOURCES`, the recipe's config, the variants, seeds and sample size.

    Together with :func:`first_losses` it decides whether the stored file is fresh."""
    from utils import gan

    h = hashlib.sha256()
    for rel in SOURCES:
        path = ROOT / rel
        h.update(rel.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    spec = {"config": dataclasses.asdict(gan.GAN_CONFIG), "variants": VARIANTS, "seeds": SEEDS,
            "n": N_SAMPLES, "epochs": EPOCHS, "checkpoints": CHECKPOINTS}
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def first_losses() -> dict[str, list[float]]:
    """The first optimiser steps' losses of every variant on the first seed (see :mod:`tools.first_steps`)."""
    from tools.first_steps import first_losses as losses_of
    from utils import gan

    return {name: losses_of(lambda name=name: gan.train_gan(variant_config(name, SEEDS[0])))
            for name in VARIANTS}


def variant_config(name: str, seed: int):
    from utils import gan

    changes = dict(VARIANTS[name], seed=seed, epochs=EPOCHS, checkpoints=CHECKPOINTS)
    return dataclasses.replace(gan.GAN_CONFIG, **changes)


def run_one(name: str, seed: int) -> dict:
    """Train one variant on one seed (one training thread) and score it."""
    import numpy as np
    import torch

    from utils import feature_net, gan

    os.environ.setdefault("TFUL_NO_PROGRESS", "1")
    torch.set_num_threads(1)
    config = variant_config(name, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    model, history = gan.train_gan(config)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0

    def score(generator):
        samples = generator.sample(N_SAMPLES, generator=torch.Generator().manual_seed(1))
        return samples, feature_net.digits_fid(samples)

    samples, fid = score(model.generator)
    pred = feature_net.digits_probs(samples).argmax(1)
    return {"variant": name, "seed": seed, "train_seconds": round(seconds, 2),
            "train_cpu_seconds": round(cpu_seconds, 2), "fid": fid,
            "is": feature_net.digits_inception_score(samples),
            "max_class_share": float(np.bincount(pred, minlength=10).max() / len(pred)),
            "fid_by_epoch": {str(e): score(model.snapshot(e))[1] for e in CHECKPOINTS},
            "final_d_loss": history["d_loss"][-1]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.update({"TFUL_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                       "OPENBLAS_NUM_THREADS": "1", "TFUL_THREADS": "1"})
    import torch

    from utils import feature_net

    feature_net.digits_fid(feature_net.fid_reference_images(), n=None)  # train/load the classifier once
    payload = {"fingerprint": fingerprint(), "torch": torch.__version__, "threads": 1,
               "seeds": list(SEEDS), "epochs": EPOCHS, "n_samples": N_SAMPLES,
               "checkpoints": list(CHECKPOINTS), "variants": VARIANTS, "first_losses": first_losses(),
               "runs": []}
    if args.out.exists():  # resume: keep the finished runs of the same code and design
        from tools.first_steps import stale

        old = json.loads(args.out.read_text())
        if old.get("fingerprint") == payload["fingerprint"] and not stale(
                old.get("first_losses", {}), payload["first_losses"]):
            payload["runs"] = old["runs"]
    done = {(r["variant"], r["seed"]) for r in payload["runs"]}
    jobs = [(name, seed) for seed in SEEDS for name in VARIANTS if (name, seed) not in done]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, name, seed) for name, seed in jobs]
        for f in as_completed(futures):
            r = f.result()
            payload["runs"].append(r)
            payload["runs"].sort(key=lambda r: (r["seed"], list(VARIANTS).index(r["variant"])))
            args.out.write_text(json.dumps(payload, indent=1) + "\n")
            print(f"{r['variant']:32s} seed {r['seed']}  FID {r['fid']:6.2f}  "
                  f"{r['train_cpu_seconds']:6.1f} s CPU", flush=True)
    print(f"{args.out}: {len(payload['runs'])} runs")


if __name__ == "__main__":
    main()
