"""Chapter 7's cure ablation (book/data/vae_ablation.json) is fresh and complete."""

import json

from tools import vae_ablation


def load():
    return json.loads(vae_ablation.OUT.read_text())


def test_ablation_is_fresh():
    from tools.first_steps import stale

    data = load()
    rerun = "rerun `python -m tools.vae_ablation --jobs 2` and commit the file"
    assert data["fingerprint"] == vae_ablation.fingerprint(), (
        f"book/data/vae_ablation.json was made with another design or version of tools/vae_ablation.py: {rerun}")
    changed = stale(data.get("first_losses", {}), vae_ablation.first_losses())
    assert not changed, f"book/data/vae_ablation.json: today's code trains {changed} differently: {rerun}"


def test_ablation_is_complete():
    data = load()
    assert {r["variant"] for r in data["runs"]} == set(vae_ablation.VARIANTS)
    for r in data["runs"]:
        for key in ("kl", "neg_elbo", "active_units"):
            assert len(r["history"][key]) == vae_ablation.EPOCHS == data["epochs"]


def test_variants_switch_the_cures():
    from utils import vae

    shared = vae_ablation.variant_config("all but per-token")
    assert shared.z_to_tokens == "shared" and shared.free_bits == vae.VAE_CONFIG.free_bits
    assert vae_ablation.variant_config("per-token only").warmup_epochs == 0
    assert vae_ablation.variant_config("warm-up only").warmup_epochs == vae.VAE_CONFIG.warmup_epochs
