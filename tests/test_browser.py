"""The built book read in a real browser, offline: Debian's Chromium driven by Selenium (issue #13).

Serves `_build/html` (build it first: `jupyter-book build . -W`) from a local HTTP server on 127.0.0.1 and
opens every page of `_toc.yml` in headless Chromium whose network is cut off: every host name but
127.0.0.1 is unresolvable and every proxied request goes to a closed port. So an equation that typesets
proves MathJax came from the book's own `_static/`, not from a CDN. For each page it asserts the title, that
no image is broken, that the maths is typeset (MathJax's output elements present, no TeX error, no raw `\\(`
or `$$` left in the visible text), that no directive was left unparsed (`.. automodule::` shown as text), that the
console shows no JavaScript error, and that the sidebar lists every chapter; it saves a screenshot of each
page and what it saw (title, first equation) in `SHOTS`. The window is a laptop's, 1366 px wide, where no display
equation may overflow its column; at a phone's 390 px the chapters' overflowing equations are counted, with a
screenshot. A last test searches for "Langevin".

Skipped, with the reason, when Chromium, ChromeDriver, Selenium or the built book is missing, unless
COURSE_REQUIRE_BROWSER=1 (set by `.ci/run`), which turns every such skip into a failure.
"""

import functools
import http.server
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "browser"  # one screenshot per page, and report.json: what the browser saw
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"


def _toc_files() -> list[str]:
    """The pages of the book, in `_toc.yml`'s order: 'book/intro', 'book/01_forward_diffusion_ddpm', ..."""
    text = (ROOT / "_toc.yml").read_text()
    return [m.group(1) for m in re.finditer(r"^(?:root|\s*-\s*file):\s*(\S+)", text, re.M)]


PAGES = _toc_files()


def _source_title(page: str) -> str:
    """The first level-1 heading of a page's source (notebook or Markdown), as plain text."""
    path = ROOT / (page + ".ipynb")
    if path.exists():
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = (ROOT / (page + ".md")).read_text()
    heading = re.search(r"^# (.+)$", text, re.M).group(1)
    heading = re.sub(r"\$([^$]*)\$", r"\1", heading)  # maths in a title is shown as its TeX source by Sphinx
    return heading.replace("`", "").strip()


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "Chromium or ChromeDriver not found (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    if not (SITE / "index.html").exists():
        return f"the book is not built ({SITE / 'index.html'} missing): run `jupyter-book build . -W` first"
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


@pytest.fixture(scope="module")
def server():
    """The built book on http://127.0.0.1:PORT/ for this module's tests."""
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def require_browser(*modules: str) -> None:
    """Skip the calling test, with the reason, unless Chromium, ChromeDriver, Selenium and `modules` are there;
    fail instead under COURSE_REQUIRE_BROWSER=1 (TensorBoard's and JupyterLab's browser tests)."""
    import importlib

    reason = None
    if CHROMIUM is None or CHROMEDRIVER is None:
        reason = "Chromium or ChromeDriver not found (Debian: apt-get install chromium chromium-driver)"
    for module in ("selenium", *modules):
        try:
            importlib.import_module(module)
        except ImportError:
            reason = reason or f"{module} is not installed (pip install -r requirements.txt)"
    if reason:
        if REQUIRED:
            pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def offline_chromium(profile: Path, window: str = "1366,768", page_timeout: float = 60):
    """Headless Chromium with no network but 127.0.0.1, logging the console; `profile` a fresh folder, `window`
    its size in px (1366 wide: a laptop's page). Shared by the browser tests (TensorBoard's and JupyterLab's)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--window-size={window}", f"--user-data-dir={profile}",
                 # offline: no host name resolves but 127.0.0.1, and anything proxied goes to a closed port
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 "--proxy-server=http://127.0.0.1:9"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_timeout)
    driver.set_script_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return driver


def wait_until_served(proc, url: str, what: str, log, seconds: float = 60) -> None:
    """Poll `url` until it answers; fail with the tail of `log()` if the server process `proc` exits first or
    `seconds` pass (TensorBoard's and JupyterLab's tests start their servers so)."""
    import urllib.request

    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not serve {url}: {log()[-2000:]}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    """Headless Chromium with no network but 127.0.0.1, logging the console, at a laptop's page."""
    driver = offline_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report():
    """What the browser saw on each page, written to SHOTS / 'report.json' at the end of the module."""
    seen: dict[str, dict] = {}
    yield seen
    if seen:
        (SHOTS / "report.json").write_text(json.dumps(seen, indent=1, ensure_ascii=False))
        print(f"\nbrowser test: {len(seen)} pages checked, screenshots and report.json in {SHOTS}")


# Waits for MathJax to finish typesetting (its startup promise; the script is deferred, so it may not have run yet
# when the page reports loaded), or returns false at once on a page that does not load MathJax.
_WAIT_MATHJAX = """
const done = arguments[arguments.length - 1];
if (!document.querySelector('script[src*="mathjax"]')) { done(false); return; }
const t0 = Date.now();
(function poll() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done(true), (e) => done(String(e)));
  } else if (Date.now() - t0 > 30000) {
    done("MathJax did not start within 30 s");
  } else { setTimeout(poll, 50); }
})();
"""

# The article's visible text with code, scripts and MathJax's own output left out: raw TeX would show here.
_PROSE_TEXT = """
const main = document.querySelector('article') || document.body;
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, script, style, mjx-container, .cell_output').forEach(e => e.remove());
document.body.appendChild(copy); copy.style.position = 'absolute'; copy.style.left = '-99999px';
const text = copy.innerText; copy.remove(); return text;
"""


# Per display equation, how many pixels it sticks out of its column (a horizontal scroll bar), > 1 px only.
_OVERFLOWING_EQUATIONS = """
return [...document.querySelectorAll('mjx-container[display="true"]')].map(e => {
  const box = e.closest('div.math') || e.parentElement;
  return Math.max(e.scrollWidth - e.clientWidth, box.scrollWidth - box.clientWidth);
}).filter(over => over > 1);
"""


# Per exercise cell (tagged `exercise`): the label of the paragraph before it ("Exercise N.M (title)"), whether
# its solution sits in a closed <details> (folded), and whether the solution's code is on screen.
_EXERCISES = """
return [...document.querySelectorAll('div.cell.tag_exercise')].map(cell => {
  const before = cell.previousElementSibling;
  const details = cell.querySelector('details');
  const code = cell.querySelector('.cell_input pre');
  return {label: before ? before.innerText.split(')')[0] + ')' : '',
          folded: !!details && !details.open && !!code && details.contains(code),
          shown: !!code && code.checkVisibility()};  // false inside a closed <details> (content-visibility)
});
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(page, server, browser, report):
    """Title, images, typeset maths, no console error, the sidebar: one page of the book."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(f"{server}/{page}.html")
    mathjax = browser.execute_async_script(_WAIT_MATHJAX)
    for _ in range(3):  # "no MathJax script" on a page with maths (seen under CI's load on three pages of one
        if mathjax is not False or not browser.execute_script("return document.querySelector('.math') !== null"):
            break  # run, typeset all the same): look again
        time.sleep(1.0)
        mathjax = browser.execute_async_script(_WAIT_MATHJAX)
    assert mathjax in (True, False), f"MathJax failed on {page}: {mathjax}"

    title = browser.title
    assert title.startswith(_source_title(page)), f"{page}: title {title!r}"
    assert title.endswith("Score-based generative models: an executable course"), title

    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert broken == [], f"{page}: broken images {broken}"

    n_maths = browser.execute_script("return document.querySelectorAll('.math, span.math, div.math').length")
    rendered = browser.execute_script("return document.querySelectorAll('mjx-container').length")
    prose = browser.execute_script(_PROSE_TEXT)
    raw = [m for m in ("\\(", "\\[", "$$") if m in prose]
    assert raw == [], f"{page}: raw TeX {raw} in the visible text"
    directives = re.findall(r"^\.\. [\w:-]+::.*$|^```\{.*$", prose, re.M)  # reST or MyST left unparsed
    assert directives == [], f"{page}: unparsed directives in the visible text: {directives[:3]}"
    if n_maths:
        assert mathjax is True and rendered >= n_maths, f"{page}: {rendered} typeset of {n_maths} equations"
    tex_errors = browser.execute_script(  # MathJax shows a TeX error in place: a stray brace as <merror>, an
        # undefined macro (its noundefined package) as its own name in red
        "return Array.from(document.querySelectorAll('mjx-merror')).map(e => e.getAttribute('data-mjx-error'))"
        ".concat(Array.from(document.querySelectorAll('mjx-assistive-mml mtext[mathcolor=\"red\"]'))"
        ".map(e => 'undefined ' + e.textContent))")
    assert tex_errors == [], f"{page}: TeX errors {tex_errors}"

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"{page}: console errors {errors}"

    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a')).map(a => a.href)")
    listed = {re.sub(r"^.*?/(book/[^#?]+)\.html.*$", r"\1", href) for href in links}
    missing = [p for p in PAGES[1:] if p not in listed]  # the root page is the logo link, not in the list
    assert missing == [], f"{page}: sidebar lacks {missing}"

    browser.save_screenshot(str(SHOTS / f"{page.replace('/', '_')}.png"))
    first = browser.execute_script(
        "const m = document.querySelector('mjx-container'); return m ? m.outerHTML.slice(0, 600) : null")
    exercises = browser.execute_script(_EXERCISES)
    chapter = re.match(r"book/(\d\d)_", page)
    if chapter:  # every chapter has graded exercises, each labelled "Exercise N.M (...)", its solution folded
        assert exercises, f"{page}: no exercise"
        unlabelled = [e["label"] for e in exercises if not re.match(rf"Exercise {int(chapter[1])}\.\d+ \(", e["label"])]
        assert unlabelled == [], f"{page}: exercises without a label 'Exercise N.M (title)': {unlabelled}"
        unfolded = [e["label"] for e in exercises if not e["folded"] or e["shown"]]
        assert unfolded == [], f"{page}: solutions not folded: {unfolded}"
    over = browser.execute_script(_OVERFLOWING_EQUATIONS)  # at the window's 1366 px: a laptop's page
    report[page] = {"title": title, "equations": n_maths, "typeset": rendered, "first_equation": first,
                    "overflowing_equations_1366px": len(over), "exercises": [e["label"] for e in exercises]}
    assert over == [], f"{page}: {len(over)} display equations overflow their column at 1366 px, by {over} px"


@pytest.mark.parametrize("page", [p for p in PAGES if re.match(r"book/\d\d_", p)])
def test_display_equations_on_a_phone_are_counted(page, server, browser, report):
    """At a phone's 390 px the display equations that need a scroll bar are counted in report.json, with a
    screenshot; not asserted (at a laptop's 1366 px `test_page_renders_offline` allows none)."""
    try:
        browser.set_window_size(390, 844)
        browser.get(f"{server}/{page}.html")
        assert browser.execute_async_script(_WAIT_MATHJAX) in (True, False)
        over = browser.execute_script(_OVERFLOWING_EQUATIONS)
        browser.save_screenshot(str(SHOTS / f"{page.replace('/', '_')}_phone.png"))
    finally:
        browser.set_window_size(1366, 768)
    report.setdefault(page, {})["overflowing_equations_390px"] = len(over)


def test_search_finds_langevin(server, browser):
    """The search page, run by the browser from the book's own search index, returns a hit for 'Langevin'."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/search.html?q=Langevin")
    summary = WebDriverWait(browser, 60).until(  # Sphinx writes the summary when the search has finished
        lambda d: "earch finished" in d.find_element(By.ID, "search-results").text
        and d.find_element(By.CSS_SELECTOR, "#search-results .search-summary").text)
    hits = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")]
    assert hits, f"no hit for 'Langevin': {summary}"
    browser.save_screenshot(str(SHOTS / "search_Langevin.png"))
    print(f"\nsearch 'Langevin': {summary} First: {hits[0].splitlines()[0]!r}")
