"""Unit tests never read or write the repository's model cache (``.cache/``)."""

import pytest


@pytest.fixture(autouse=True)
def _private_model_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TFUL_CACHE", str(tmp_path_factory.mktemp("model-cache")))
    monkeypatch.delenv("TFUL_RUN_LOG", raising=False)
