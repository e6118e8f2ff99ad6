"""Sphinx extension for the book's links to its repository: one setting turns them on.

Setting ``repository.url`` in ``_config.yml`` (a GitHub repository) shows the repository
and issue buttons in the header of every page and, on every chapter, the launch buttons
that open the notebook in Binder and in Google Colab. With no URL (the empty string),
every one of them stays off. The buttons' own settings in ``_config.yml`` are overridden,
so they cannot disagree with the URL.

It also drops repeated inline scripts from every page. Sphinx 7.4 writes an inline script
that an extension adds after the builder starts (sphinx-togglebutton's selector,
sphinx-thebe's settings) twice, and the second ``const THEBE_JS_URL`` is a JavaScript error
in the console of every page. And the light/dark switch starts from "auto" (the reader's
system setting) rather than the theme's empty default, which its script reports as an error.
"""

from __future__ import annotations

from sphinx.application import Sphinx

BINDERHUB_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
BUTTONS = ("use_repository_button", "use_issues_button")


def repository_url(theme_options: dict) -> str:
    """The repository's URL from the theme options, or ``""`` when none is set."""
    url = theme_options.get("repository_url") or ""
    if not isinstance(url, str):
        raise TypeError(f"repository.url must be a string, got {type(url).__name__}")
    url = url.strip().removesuffix("/")
    if url and not url.startswith("https://"):
        raise ValueError(f"repository.url must be an https:// address, got {url!r}")
    return url


def site_buttons(theme_options: dict) -> dict:
    """Theme options with the repository, issue and launch buttons on exactly when a URL is set."""
    options = dict(theme_options)
    url = repository_url(options)
    options["repository_url"] = url
    for button in BUTTONS:
        options[button] = bool(url)
    options["use_edit_page_button"] = False
    launch = dict(options.get("launch_buttons") or {})
    launch["binderhub_url"] = BINDERHUB_URL if url else ""
    launch["colab_url"] = COLAB_URL if url else ""
    launch.setdefault("notebook_interface", "classic")
    launch.setdefault("thebe", False)
    options["launch_buttons"] = launch
    return options


def page_context(html_context: dict) -> dict:
    """The pages' template context with a valid light/dark default: "auto" follows the
    reader's system. (The theme's own default is empty, which its script reports as an
    error in the console on a reader's first visit.)"""
    context = dict(html_context)
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    return context


def apply_site_options(app: Sphinx, config) -> None:
    config.html_theme_options = site_buttons(config.html_theme_options or {})
    config.html_context = page_context(config.html_context or {})


def _script_key(script) -> tuple:
    attributes = getattr(script, "attributes", {})
    return (getattr(script, "filename", script) or "", getattr(script, "priority", 500),
            tuple(sorted(attributes.items())))


def unique_scripts(scripts: list) -> list:
    """The page's scripts, each once, in their order (a missing file name counts as "")."""
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        scripts[:] = unique_scripts(scripts)


def setup(app: Sphinx):
    app.connect("config-inited", apply_site_options)
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
