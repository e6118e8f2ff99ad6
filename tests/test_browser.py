"""The built site in a real browser: Debian's chromium, driven by Selenium through chromedriver.

Every HTML page of ``_build/html`` is served from 127.0.0.1 and loaded with every other host
unreachable. Each page must load without a console error and without asking for anything
outside the site, show every image, and have its mathematics typeset by the bundled MathJax.
Then search, the dark theme, the notebook download and the launch buttons are checked, and
a few screenshots are saved in ``_build/screenshots/`` for a person to look at.

Without chromium or chromedriver these tests skip, and ``make test`` says so in one line
(see ``pytest_terminal_summary`` in ``conftest.py``).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.helpers import BUILD, HTML, ROOT

SKIP_LINE = ("browser tests skipped: chromium or chromedriver is missing "
             "(to run them: apt-get install chromium chromium-driver)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = BUILD / "screenshots"
CHAPTER = "notebooks/07_transformer_vae.html"
# the search terms a reader would type, and the chapter that teaches each
SEARCHES = {
    "silhouette": "notebooks/05_clustering_and_metrics.html",
    "posterior collapse": "notebooks/07_transformer_vae.html",
    "Fréchet": "notebooks/09_evaluating_generative_models.html",
}
PAGE_TIMEOUT = 30
_COLLECTED_AT = time.time() - 60

pytestmark = [pytest.mark.book,
              pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=SKIP_LINE)]


# ---------------------------------------------------------------- the site and the browser

def _book_html() -> Path:
    """The book that tests/test_book.py built in this session, or a fresh build of it."""
    log = BUILD / "book-build.log"
    if log.exists() and log.stat().st_mtime >= _COLLECTED_AT \
            and "Finished generating HTML" in log.read_text(errors="replace"):
        return HTML
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n", "--keep-going"],
                            cwd=ROOT, capture_output=True, text=True)
    log.parent.mkdir(exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"book build failed (full log: {log})"
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def site():
    """(root URL, html folder): the built book served on 127.0.0.1 from a thread."""
    html = _book_html()
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", html
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    # Selenium is told where chromedriver and chromium are, so Selenium Manager never runs
    # (and, offline, could not download anything if it did).
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _real_binary(CHROMIUM)
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--mute-audio",
                # every host but the local server is unreachable
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    driver.set_script_timeout(2 * PAGE_TIMEOUT)
    # a second fence: the site is plain http on 127.0.0.1, so nothing secure is ever needed
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["https://*", "ws://*", "wss://*"]})
    yield driver
    driver.quit()


def _real_binary(path: str) -> str:
    """Debian's /usr/bin/chromium is a shell launcher; chromedriver wants the executable."""
    real = Path("/usr/lib/chromium/chromium")
    return str(real) if Path(path).resolve() == Path("/usr/bin/chromium") and real.exists() else path


# ---------------------------------------------------------------- what one page load shows

_WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(img => { img.loading = "eager"; });
const images = Promise.all(imgs.map(img => img.decode().catch(() => null)));
const hasMath = document.querySelector(".math, .MathJax, mjx-container") !== null;
// MathJax is loaded with "defer"; give it a few seconds to start, then wait for its typesetting
const started = new Promise(resolve => {
    const t0 = Date.now();
    (function poll() {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) resolve(true);
        else if (Date.now() - t0 > 10000) resolve(false);
        else setTimeout(poll, 50);
    })();
});
const math = !hasMath ? Promise.resolve(null) : started.then(ok => !ok ? "MathJax never started"
    : MathJax.startup.promise.then(() => true, e => "MathJax failed: " + e));
// a page that is still busy after 40 s is reported as such (its images as broken), not waited for
const late = new Promise(resolve => setTimeout(() => resolve([null, "still typesetting after 40 s"]), 40000));
Promise.race([Promise.all([images, math]), late]).then(([_, typeset]) => done({
    hasMath: hasMath,
    typeset: typeset,
    containers: document.querySelectorAll("mjx-container").length,
    mathjaxErrors: document.querySelectorAll("mjx-merror, [data-mjx-error]").length,
    brokenImages: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src),
    downloads: Array.from(document.querySelectorAll(".dropdown-download-buttons a"), a => a.href)
        .filter(h => h.endsWith(".ipynb")),
    text: (() => {
        const clone = document.body.cloneNode(true);
        clone.querySelectorAll("pre, code, script, style, textarea, mjx-container").forEach(e => e.remove());
        return clone.textContent;
    })(),
}));
"""


def _network(driver) -> list[dict]:
    """The Network events of the performance log since the last call."""
    events = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            events.append(message)
    return events


def _outside(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme not in ("data", "blob", "about", "chrome", "devtools") \
        and parts.hostname not in ("127.0.0.1", None)


def _visit(driver, url: str) -> dict:
    """Load one page; return what it showed, what it logged and what it asked the network for."""
    driver.get_log("browser")
    _network(driver)
    driver.get(url)
    shown = driver.execute_async_script(_WAIT_FOR_PAGE)
    events = _network(driver)
    shown["errors"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    shown["outside"] = sorted({e["params"]["request"]["url"] for e in events
                               if e["method"] == "Network.requestWillBeSent"
                               and _outside(e["params"]["request"]["url"])})
    # (the browser asks for /favicon.ico on its own; the book has no icon)
    shown["failed"] = sorted({f"{e['params']['response']['status']} {e['params']['response']['url']}"
                              for e in events if e["method"] == "Network.responseReceived"
                              and e["params"]["response"]["status"] >= 400
                              and not e["params"]["response"]["url"].endswith("/favicon.ico")})
    return shown


def _pages(html: Path) -> list[str]:
    skip = {"_static", "_sources", "_images", "mathjax", "screenshots"}
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if not skip & set(p.relative_to(html).parts))


def _rel(url: str, base: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path).removeprefix(urllib.parse.urlsplit(base).path)


# ---------------------------------------------------------------- the checks

@pytest.fixture(scope="module")
def visits(site, browser):
    """Every HTML page of the book, loaded once: {page: what it showed}."""
    base, html = site
    return {page: _visit(browser, base + page) for page in _pages(html)}


def test_every_page_loads_without_console_errors(visits):
    assert len(visits) >= 20, sorted(visits)
    bad = {page: v["errors"] for page, v in visits.items() if v["errors"]}
    assert not bad, f"console errors: {json.dumps(bad, indent=1)}"


def test_no_page_asks_for_anything_outside_the_site(visits):
    outside = {page: v["outside"] for page, v in visits.items() if v["outside"]}
    assert not outside, f"requests to other hosts: {json.dumps(outside, indent=1)}"
    failed = {page: v["failed"] for page, v in visits.items() if v["failed"]}
    assert not failed, f"local requests that failed: {json.dumps(failed, indent=1)}"


def test_every_image_loads(visits):
    broken = {page: v["brokenImages"] for page, v in visits.items() if v["brokenImages"]}
    assert not broken, f"images that did not load: {json.dumps(broken, indent=1)}"


def test_mathjax_typesets_every_page_with_math(visits):
    with_math = {page: v for page, v in visits.items() if v["hasMath"]}
    assert "notebooks/01_attention_from_scratch.html" in with_math, "chapter 1's attention formula"
    for page, v in with_math.items():
        assert v["typeset"] is True, f"{page}: {v['typeset']}"
        assert v["containers"] > 0, f"{page}: no typeset mathematics"
        assert v["mathjaxErrors"] == 0, f"{page}: MathJax reported {v['mathjaxErrors']} errors"
        for raw in ("$$", "\\(", "\\["):
            assert raw not in v["text"], f"{page}: raw {raw!r} left in the text"


@pytest.mark.parametrize("term", sorted(SEARCHES))
def test_search_finds_the_chapter_that_teaches_it(site, browser, term):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = site
    browser.get(base + "search.html?q=" + urllib.parse.quote(term))
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda d: d.execute_script("const s = document.querySelector('#search-results .search-summary');"
                                   "return s !== null && s.textContent.trim().length > 0;"))
    found = [_rel(a.get_attribute("href"), base)
             for a in browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    chapters = list(dict.fromkeys(p for p in found if p.startswith("notebooks/")))
    assert SEARCHES[term] in chapters[:2], f"search for {term!r} found {found}"


def _theme(driver) -> dict:
    return driver.execute_script(
        "return {theme: document.documentElement.dataset.theme, mode: document.documentElement.dataset.mode,"
        " background: getComputedStyle(document.body).backgroundColor};")


def _luminance(css_color: str) -> float:
    channels = [float(c) for c in css_color[css_color.index("(") + 1:-1].split(",")[:3]]
    return sum(w * c / 255 for w, c in zip((0.2126, 0.7152, 0.0722), channels, strict=True))


_FIGURES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.querySelectorAll(".bd-content img"));
Promise.all(imgs.map(img => img.decode().catch(() => null))).then(() => done(imgs.map(img => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let transparent = 0;
    for (let i = 3; i < data.length; i += 4) { if (data[i] < 250) transparent++; }
    return {src: img.currentSrc, transparent: transparent / (data.length / 4),
            background: getComputedStyle(img).backgroundColor};
})));
"""


def _screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    if driver.execute_script("const img = document.querySelector('.cell_output img');"
                             "if (img) { img.scrollIntoView({block: 'center'}); } return img !== null;"):
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-figure.png"))  # the page's first figure
        driver.execute_script("window.scrollTo(0, 0);")
    return path


def test_dark_mode_switches_the_theme_and_keeps_figures_readable(site, browser):
    from selenium.webdriver.common.by import By

    base, _ = site
    pages = {"intro": "book/intro.html", "chapter": CHAPTER, "results": "book/results.html"}
    browser.get(base + pages["intro"])
    browser.execute_script("localStorage.clear();")
    for name, page in pages.items():
        browser.get(base + page)
        assert _theme(browser)["theme"] == "light", f"{page} does not start light"
        _screenshot(browser, f"{name}-light")

    light = _theme(browser)
    for _ in range(3):  # light -> dark -> auto: the button steps through the modes
        if _theme(browser)["theme"] == "dark":
            break
        browser.find_element(By.CSS_SELECTOR, "button.theme-switch-button").click()
    dark = _theme(browser)
    assert dark["theme"] == "dark", f"the theme button never switched to dark: {dark}"
    assert _luminance(dark["background"]) < 0.3 < 0.7 < _luminance(light["background"]), (light, dark)

    for name, page in pages.items():
        browser.get(base + page)
        assert _theme(browser)["theme"] == "dark", f"{page} forgot the dark theme"
        _screenshot(browser, f"{name}-dark")
        figures = browser.execute_async_script(_FIGURES)
        if name == "chapter":
            assert figures, f"{page} shows no figure"
        for fig in figures:
            # black text on a see-through figure would vanish on a dark page: every figure
            # is opaque, or the theme lays it on a light background
            readable = fig["transparent"] < 0.01 or _luminance(fig["background"]) > 0.7
            assert readable, f"{page}: {fig['src']} is {fig['transparent']:.0%} transparent " \
                             f"on a {fig['background']} background"
    browser.execute_script("localStorage.clear();")


def test_download_button_serves_the_notebook(visits):
    chapters = {page: v for page, v in visits.items() if page.startswith("notebooks/")}
    assert len(chapters) >= 9, sorted(chapters)
    for page, v in chapters.items():
        assert len(v["downloads"]) == 1, f"{page}: download links to a notebook: {v['downloads']}"
        link = v["downloads"][0]
        assert Path(urllib.parse.urlsplit(link).path).stem == Path(page).stem, link
        with urllib.request.urlopen(link, timeout=PAGE_TIMEOUT) as response:
            assert response.status == 200
            nb = json.loads(response.read())
        assert nb["nbformat"] == 4 and nb["cells"], f"{link} is not a notebook"


def test_repository_and_launch_buttons_follow_the_repository_url(site, browser):
    from selenium.webdriver.common.by import By

    base, _ = site
    url = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url") or ""
    browser.get(base + CHAPTER)
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, ".article-header-buttons a")]
    launch = [h for h in hrefs if "colab.research.google.com" in h or "mybinder.org" in h]
    repository = [h for h in hrefs if url and h.startswith(url)]
    if url:
        assert len(launch) == 2 and repository, f"with repository.url set, the buttons are {hrefs}"
    else:
        assert not launch and not [h for h in hrefs if "github.com" in h], f"no repository.url, yet {hrefs}"
