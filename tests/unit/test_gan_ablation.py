"""Chapter 8's stabiliser ablation (book/data/gan_ablation.json) is fresh and complete."""

import json

from tools import gan_ablation


def load():
    return json.loads(gan_ablation.OUT.read_text())


def test_ablation_is_fresh():
    from tools.first_steps import stale

    data = load()
    rerun = "rerun `python -m tools.gan_ablation --jobs 2` and commit the file"
    assert data["fingerprint"] == gan_ablation.fingerprint(), (
        f"book/data/gan_ablation.json was made with another design or version of tools/gan_ablation.py: {rerun}")
    changed = stale(data.get("first_losses", {}), gan_ablation.first_losses())
    assert not changed, f"book/data/gan_ablation.json: today's code trains {changed} differently: {rerun}"


def test_ablation_is_complete():
    data = load()
    runs = {(r["variant"], r["seed"]) for r in data["runs"]}
    assert runs == {(v, s) for v in gan_ablation.VARIANTS for s in gan_ablation.SEEDS}
    for r in data["runs"]:
        assert set(r["fid_by_epoch"]) == {str(e) for e in gan_ablation.CHECKPOINTS}
        assert r["fid"] > 0 and 1 <= r["is"] <= 10 and 0 < r["train_cpu_seconds"]


def test_variants_change_one_thing():
    from utils import gan

    for name in gan_ablation.VARIANTS:
        config = gan_ablation.variant_config(name, seed=3)
        assert config.seed == 3 and config.epochs == gan_ablation.EPOCHS
        assert config.checkpoints == gan_ablation.CHECKPOINTS
    # the variants named after one stabiliser differ from the recipe in that field only
    assert gan_ablation.variant_config("no EMA", 0).ema_decay is None
    assert gan_ablation.variant_config("recipe", 0).loss == gan.GAN_CONFIG.loss
