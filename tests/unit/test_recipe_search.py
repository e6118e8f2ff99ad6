"""The search behind the full recipes (book/data/recipe_search.json) is complete, fresh and honest."""

import json

import pytest

from tools import recipe_search
from tools.first_steps import stale
from utils import models

#: the metric each model is judged by, and whether higher is better
JUDGED_BY = {"gan": ("fid", False), "vae": ("fid", False), "digits-ssl-contrastive": ("kmeans_ari", True),
             "digits-ssl-masked": ("hidden_mse", False), "clustergan": ("acc", True), "dec": ("ari", True)}


def runs():
    return {(r["model"], r["candidate"]): r for r in json.loads(recipe_search.OUT.read_text())["runs"]}


def test_every_candidate_was_run_and_scored():
    have = runs()
    for model, candidates in recipe_search.CANDIDATES.items():
        metric, _ = JUDGED_BY[model]
        for name in candidates:
            assert (model, name) in have, f"{model}: {name!r} not run; run `python -m tools.recipe_search`"
            assert have[(model, name)][metric] > 0


@pytest.mark.parametrize("model", sorted(recipe_search.CANDIDATES))
def test_the_full_recipe_is_the_best_candidate(model):
    full = models.recipe(model).full
    chosen = [n for n in recipe_search.CANDIDATES[model]
              if recipe_search._same_training(recipe_search.candidate_config(model, n), full)]
    assert chosen, f"the full {model} recipe is none of the searched candidates"
    metric, higher = JUDGED_BY[model]
    scores = {n: runs()[(model, n)][metric] for n in recipe_search.CANDIDATES[model]}
    best = (max if higher else min)(scores, key=scores.get)
    assert scores[chosen[0]] == scores[best], (
        f"the full {model} recipe ({chosen[0]!r}, {metric} {scores[chosen[0]]:.4g}) is not the best "
        f"candidate ({best!r}, {scores[best]:.4g})")


def test_the_search_is_fresh():
    """Each candidate's first losses, re-computed with today's code, match the recorded ones."""
    have = runs()
    stored = {f"{m}: {n}": have[(m, n)]["first_losses"] for m, cands in recipe_search.CANDIDATES.items()
              for n in cands}
    today = {f"{m}: {n}": recipe_search.candidate_first_losses(m, n)
             for m, cands in recipe_search.CANDIDATES.items() for n in cands}
    changed = stale(stored, today)
    assert not changed, (f"today's code trains {changed} differently: rerun "
                         "`python -m tools.recipe_search --again --only <model>` and commit the file")
