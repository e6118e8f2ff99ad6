"""The site around the book: its publish workflow, CI's script and the repository buttons."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def readme_test_command() -> str:
    """The command the README gives for running every test."""
    match = re.search(r"^make test\b", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert match, "the README names `make test` as its test command"
    return "make test"


def site_extension():
    spec = importlib.util.spec_from_file_location("tful_site", ROOT / "book" / "_ext" / "tful_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the publish workflow

def test_workflow_is_valid_for_github():
    checker = Path(sys.executable).parent / "check-jsonschema"
    # the schema ships inside check-jsonschema: no download (a proxy that refuses proves it)
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_tests_every_push_and_publishes_main():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    on = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert "push" in on and not (on["push"] or {}).get("branches"), "tests run on every push"
    test, publish = workflow["jobs"]["test"], workflow["jobs"]["publish"]

    runs = [step["run"] for step in test["steps"] if "run" in step]
    assert runs[-1] == readme_test_command(), f"the test job ends with the README's command, not {runs}"
    assert [r for r in runs if "make" in r] == [readme_test_command()], runs
    assert re.search(r"apt-get install .*\bchromium\b.*\bchromium-driver\b", " ".join(runs)), runs
    assert "3.11" in str(test.get("container", "")) or any(
        step.get("with", {}).get("python-version") == "3.11" for step in test["steps"])

    upload = [s for s in test["steps"] if str(s.get("uses", "")).startswith("actions/upload-pages-artifact@")]
    assert len(upload) == 1 and upload[0]["with"]["path"] == "_build/html"
    assert "refs/heads/main" in upload[0]["if"]
    assert "refs/heads/main" in publish["if"] and publish["needs"] == "test"
    assert publish["permissions"] == {"pages": "write", "id-token": "write"}
    assert publish["environment"]["name"] == "github-pages"
    assert [str(s.get("uses", "")).split("@")[0] for s in publish["steps"]] == ["actions/deploy-pages"]
    assert workflow["permissions"] == {"contents": "read"}, "nothing else may write"


def test_ci_script_runs_the_readme_command_after_installing_the_browser():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == readme_test_command()
    assert "apt-get install" in script and "chromium-driver" in script
    assert 'id -u' in script, "sudo only when not root"
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- the repository switch

def _final_theme_options(url: str | None) -> tuple[dict, list[str]]:
    """Jupyter Book's Sphinx settings from _config.yml (with repository.url overridden),
    then the book's extension applied as it is on config-inited."""
    from jupyter_book.config import get_final_config

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    if url is not None:
        config["repository"]["url"] = url
    sphinx, _ = get_final_config(user_yaml=config, cli_config={"latex_individualpages": False}, sourcedir=ROOT)

    class Config:
        html_theme_options = sphinx["html_theme_options"]
        html_context = sphinx.get("html_context", {})

    site_extension().apply_site_options(None, Config)
    return Config.html_theme_options, sphinx["extensions"]


def test_the_book_loads_the_site_extension():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["tful_site"] == "book/_ext"
    assert config["repository"]["url"] == "", "the published book names no repository until one is set"


def test_no_repository_url_keeps_every_button_off():
    options, extensions = _final_theme_options(None)
    assert "tful_site" in extensions
    assert options["repository_url"] == ""
    assert not options["use_repository_button"] and not options["use_issues_button"]
    assert not options["launch_buttons"]["binderhub_url"] and not options["launch_buttons"]["colab_url"]


def test_a_repository_url_turns_on_repository_issue_and_launch_buttons():
    options, _ = _final_theme_options("https://github.com/someone/tful/")
    assert options["repository_url"] == "https://github.com/someone/tful"
    assert options["use_repository_button"] and options["use_issues_button"]
    assert options["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert options["repository_branch"] == "main"


def test_repository_url_is_checked():
    site = site_extension()
    with pytest.raises(ValueError, match="https://"):
        site.site_buttons({"repository_url": "git@github.com:someone/tful.git"})
    with pytest.raises(TypeError, match="string"):
        site.site_buttons({"repository_url": 42})


def test_light_dark_switch_starts_from_auto():
    site = site_extension()
    assert site.page_context({})["default_mode"] == "auto"
    assert site.page_context({"default_mode": "dark"})["default_mode"] == "dark"


def test_repeated_inline_scripts_are_written_once():
    from sphinx.builders.html._assets import _JavaScript

    toggle = "var togglebuttonSelector = '.toggle';"
    scripts = [_JavaScript("_static/doctools.js", priority=200), _JavaScript(None, body=toggle),
               _JavaScript("_static/a.js"), _JavaScript("", body=toggle), _JavaScript("", body="other")]
    assert scripts[1] != scripts[3], "Sphinx 7.4 tells these apart, so both are written"
    unique = site_extension().unique_scripts(scripts)
    assert [s.filename or "" for s in unique] == ["_static/doctools.js", "", "_static/a.js", ""]
    assert [s.attributes.get("body") for s in unique] == [None, toggle, None, "other"]
