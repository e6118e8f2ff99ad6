"""``make checkpoints``: train every full recipe and ship it in ``checkpoints/``.

Each recipe of :mod:`utils.models` that has a full config is trained on the CPU, on one
thread, with the book's seeds (whatever ``$TFUL_SEED_OFFSET`` says), and written as
``checkpoints/<name>.safetensors`` with its card ``checkpoints/<name>.json``
(:mod:`utils.checkpoints`). The card records the first losses of the run, which
``tests/unit/test_checkpoints.py`` re-computes to prove the file comes from today's code,
and the metrics of :func:`tools.recipe_search.score` measured on the trained model.

::

    python -m tools.checkpoints              # every recipe, two at a time
    python -m tools.checkpoints --name gan   # one
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor


def shipped_names() -> list[str]:
    from utils import models

    return [n for n in models.names() if models.recipe(n).full is not None]


def make(name: str) -> dict:
    """Train the full recipe ``name`` and write its checkpoint and card; return the card."""
    os.environ.setdefault("TFUL_NO_PROGRESS", "1")
    from tools.recipe_search import score
    from utils import checkpoints, models, runtime, train

    r = models.recipe(name)
    if r.full is None:
        raise ValueError(f"the recipe {name!r} has no full config")
    config = r.full
    for dep in r.depends:
        reason = models.check_shipped(dep)
        if reason is not None:
            raise RuntimeError(f"{name} starts from the shipped {dep} model, which cannot be used: {reason}; "
                               f"run `make checkpoints NAME={dep}` first")
    with runtime.book_defaults():
        t0, c0 = time.perf_counter(), time.process_time()
        with train.first_losses(checkpoints.FIRST_STEPS) as losses, runtime.training():
            model, history = r.train(config)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        with runtime.threads(1):
            metrics = score(name, model)
    config_dict = models._jsonable(dataclasses.asdict(config))
    card = {
        "recipe": name, "version": r.version, "config": config_dict, "summary": r.summary,
        "fingerprint": runtime.config_hash({"recipe": name, "version": r.version, "config": config_dict}),
        "first_losses": losses, "epochs": getattr(config, "epochs", None), "seed": getattr(config, "seed", None),
        "train_threads": 1, "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
        **checkpoints.machine_facts(), "history": models._plain_history(history), "metrics": metrics,
    }
    card = checkpoints.write(name, model.state_dict(), card)
    print(f"{name}: {seconds:.0f} s, {metrics}", flush=True)
    return card


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", action="append", help="one recipe (repeatable); default: all")
    parser.add_argument("--jobs", type=int, default=2, help="recipes trained at once (default 2)")
    args = parser.parse_args(argv)
    names = args.name or shipped_names()
    unknown = sorted(set(names) - set(shipped_names()))
    if unknown:
        parser.error(f"no full recipe called {unknown}; choose from {shipped_names()}")
    t0 = time.perf_counter()
    # recipes that start from another shipped model train after it
    from utils import models

    later = [n for n in names if models.recipe(n).depends]
    for batch in ([n for n in names if n not in later], later):
        if batch:
            with ProcessPoolExecutor(min(args.jobs, len(batch))) as pool:
                list(pool.map(make, batch))
    print(f"{len(names)} checkpoint(s) in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
