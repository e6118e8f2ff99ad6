"""The search for the full training recipes: each candidate trained once, scored, and recorded.

The quick recipes (``models.recipe(name).default``) fit a chapter's time budget; the full
ones (``models.recipe(name).full``) are what ``make checkpoints`` trains and ships. This
script trains the candidates that led to each full recipe, on one thread with the book's
seeds, and scores each with the metric the book reports for that model:

* ``gan``, ``vae``: digits-FID and the Inception-Score analogue of 1,000 samples (seed 1);
* ``digits-ssl-contrastive``: k-means ARI of the features of all 1,797 digits;
* ``digits-ssl-masked``: the hidden-patch MSE on fresh masks (the training loss, measured);
* ``clustergan``: cluster accuracy (Hungarian matching) on all 1,797 digits.

Results go to ``book/data/recipe_search.json``, with a fingerprint of the code they were made
with; ``tests/unit/test_recipe_search.py`` checks that the file covers every candidate and
that the chosen full recipe is the best-scoring candidate of its model.

Run ``python -m tools.recipe_search`` (``--only gan`` for one model, ``--jobs 2`` for two at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "book" / "data" / "recipe_search.json"

#: model -> candidate name -> fields changed from the quick recipe
CANDIDATES: dict[str, dict[str, dict]] = {
    "vae": {
        "quick": {},
        "120 epochs": {"epochs": 120},
        "300 epochs": {"epochs": 300},
        "300 epochs, KL warm-up 30": {"epochs": 300, "warmup_epochs": 30},
        "80 epochs": {"epochs": 80},
        "160 epochs": {"epochs": 160},
        "120 epochs, 8 latent dimensions": {"epochs": 120, "latent_dim": 8},
        "200 epochs, 8 latent dimensions": {"epochs": 200, "latent_dim": 8},
    },
    "gan": {
        "quick": {},
        "150 epochs": {"epochs": 150, "checkpoints": (150,)},
        "150 epochs, linear lr decay, EMA 0.999": {"epochs": 150, "checkpoints": (150,),
                                                   "lr_schedule": "linear", "ema_decay": 0.999},
        "300 epochs, linear lr decay, EMA 0.999": {"epochs": 300, "checkpoints": (300,),
                                                   "lr_schedule": "linear", "ema_decay": 0.999},
        "150 epochs, linear lr decay": {"epochs": 150, "checkpoints": (150,), "lr_schedule": "linear"},
        "300 epochs": {"epochs": 300, "checkpoints": (300,)},
        "300 epochs, linear lr decay": {"epochs": 300, "checkpoints": (300,), "lr_schedule": "linear"},
        "150 epochs, width 96": {"epochs": 150, "checkpoints": (150,), "d_model": 96, "d_ff": 192},
        "300 epochs, width 96": {"epochs": 300, "checkpoints": (300,), "d_model": 96, "d_ff": 192},
    },
    "digits-ssl-contrastive": {
        "quick": {},
        "300 epochs": {"epochs": 300},
        "600 epochs": {"epochs": 600},
        "1200 epochs": {"epochs": 1200},
        "600 epochs, temperature 0.2": {"epochs": 600, "temperature": 0.2},
        "600 epochs, batch 256": {"epochs": 600, "batch_size": 256},
    },
    "digits-ssl-masked": {
        "quick": {},
        "200 epochs": {"epochs": 200},
        "600 epochs": {"epochs": 600},
    },
    "dec": {
        "quick": {},
        "60 epochs": {"epochs": 60},
    },
    "clustergan": {
        "quick": {},
        "100 epochs, linear lr decay": {"epochs": 100, "lr_schedule": "linear"},
        "100 epochs": {"epochs": 100},
        "200 epochs, linear lr decay": {"epochs": 200, "lr_schedule": "linear"},
    },
}


def candidate_config(model: str, name: str):
    from utils import models

    base = models.recipe(model).default
    return dataclasses.replace(base, **CANDIDATES[model][name])


def candidate_first_losses(model: str, name: str) -> list[float]:
    """The first optimiser steps' losses of a candidate (see :mod:`tools.first_steps`)."""
    from tools.first_steps import first_losses
    from utils import models

    config = candidate_config(model, name)
    return first_losses(lambda: models.recipe(model).train(config))


def score(model: str, trained) -> dict[str, float]:
    """The book's metric(s) for ``model`` on the trained network."""
    import numpy as np
    import torch

    from utils import data, feature_net, ssl
    from utils.metrics import cluster_accuracy

    m = trained
    if model in ("gan", "vae"):
        gen = m.generator if model == "gan" else m
        samples = gen.sample(1000, generator=torch.Generator().manual_seed(1))
        return {"fid": feature_net.digits_fid(samples), "is": feature_net.digits_inception_score(samples)}
    if model == "feature-net":
        _, x_test, _, y_test = data.digits_split()
        with torch.no_grad():
            pred = m(torch.tensor(x_test)).argmax(1).numpy()
        return {"test_acc": float((pred == y_test).mean())}
    x, y = data.load_digits_images()
    if model == "digits-ssl-contrastive":
        return {"kmeans_ari": ssl.evaluate_features(ssl.encode(m, x), y)["kmeans_ari"]}
    if model == "digits-ssl-masked":
        return {"hidden_mse": ssl.hidden_patch_mse(m, x, seed=123)}
    if model == "dec":
        from sklearn.metrics import adjusted_rand_score

        pred = m.assignments(torch.tensor(x)).argmax(1).numpy()
        return {"ari": float(adjusted_rand_score(y, pred)), "acc": float(cluster_accuracy(np.asarray(y), pred))}
    if model == "clustergan":
        from utils import clustergan

        pred = clustergan.cluster_assignments(m.encoder, torch.tensor(x)).numpy()
        return {"acc": float(cluster_accuracy(np.asarray(y), pred))}
    raise KeyError(model)


def run_one(job: tuple[str, str]) -> dict:
    os.environ.setdefault("TFUL_NO_PROGRESS", "1")
    from tools.first_steps import N as FIRST_STEPS
    from utils import models, runtime, train

    model, name = job
    config = candidate_config(model, name)
    t0 = time.process_time()
    with runtime.book_defaults(), train.first_losses(FIRST_STEPS) as losses, runtime.training():
        net, history = models.recipe(model).train(config)
    cpu = time.process_time() - t0
    with runtime.threads(1):
        metrics = score(model, net)
    row = {"model": model, "candidate": name, "changes": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in CANDIDATES[model][name].items()},
           "epochs": config.epochs, "train_cpu_seconds": round(cpu, 1), **metrics, "first_losses": losses,
           "history_tail": {k: v[-3:] for k, v in history.items()}}
    print(json.dumps({k: row[k] for k in row if k != "history_tail"}), flush=True)
    return row


def _same_training(a, b) -> bool:
    """Equal configs, up to which epochs the GAN keeps snapshots of (that does not change training)."""
    if hasattr(a, "checkpoints"):
        a, b = dataclasses.replace(a, checkpoints=()), dataclasses.replace(b, checkpoints=())
    return a == b


def from_card(model: str, name: str) -> dict | None:
    """The candidate's row from the shipped checkpoint's card, when that checkpoint is this candidate.

    ``make checkpoints`` trains the full recipe exactly as this script would (same code, seed
    and thread), and its card records the same metrics, so the run is not repeated.
    """
    from utils import checkpoints, models

    card = checkpoints.read_card(model) if models.recipe(model).full is not None else None
    if card is None or models.check_shipped(model, reproduce=False) is not None:
        return None
    if not _same_training(candidate_config(model, name), models.recipe(model).full):
        return None
    return {"model": model, "candidate": name, "changes": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in CANDIDATES[model][name].items()},
            "epochs": card["epochs"], "train_cpu_seconds": card["train_cpu_seconds"], **card["metrics"],
            "first_losses": card["first_losses"], "source": f"checkpoints/{model}.json",
            "history_tail": {k: v[-3:] for k, v in card["history"].items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="a model name (repeatable)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--again", action="store_true", help="re-run candidates the file already holds")
    args = parser.parse_args(argv)
    old = json.loads(OUT.read_text()) if OUT.exists() else {"runs": []}
    done = {(r["model"], r["candidate"]): r for r in old["runs"]}
    for (model, name), row in done.items():   # runs recorded before the file held first losses
        if "first_losses" not in row and name in CANDIDATES.get(model, {}):
            row["first_losses"] = candidate_first_losses(model, name)
    jobs = [(m, n) for m, cands in CANDIDATES.items() if not args.only or m in args.only for n in cands
            if args.again or (m, n) not in done]
    for job in list(jobs):       # a candidate that is a shipped checkpoint: its card holds the run
        row = from_card(*job)
        if row is not None:
            done[job] = row
            jobs.remove(job)
    OUT.write_text(json.dumps({"runs": [done[k] for k in sorted(done)]}, indent=1) + "\n")
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run_one, jobs):
            # re-read first: another search (--only another model) may have written meanwhile
            for r in json.loads(OUT.read_text())["runs"]:
                done.setdefault((r["model"], r["candidate"]), r)
            done[(row["model"], row["candidate"])] = row
            runs = [done[k] for k in sorted(done)]
            OUT.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
