"""Chapters 5 and 8 opened in JupyterLab as a learner opens them, in the browser of tests/test_browser.py (issue
#29, part one).

`jupyter lab` (the course's own, with its kernel), started in a temporary folder, serves it on 127.0.0.1 with a
token. The folder holds a copy of each chapter with every Markdown cell and the code cells that its widget needs
(`WIDGET_CELLS`: the imports, what the widget's function reads, and the widget itself; the other code cells are
left out so that the test takes a minute, not the chapter's two). Headless Chromium opens the copy, runs all its
cells from the Run menu, and waits for the widget's figure; then it changes a control (and presses the button of
chapter 8's `interact_manual`) and waits for a new figure. It asserts that `import helpers` worked (no error
output), that no "Error displaying widget" shows, that the Markdown reads as it does in the book (no raw `{cite:`
role and no MyST directive fence: `jupyterlab-myst` renders them), and that the server logged no error line.
Screenshots go to `_build/browser/jupyterlab_*.png`.

Skipped, with the reason, where Chromium, Selenium or JupyterLab is missing, unless COURSE_REQUIRE_BROWSER=1
(set by `.ci/run`).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_browser import ROOT, SHOTS, offline_chromium, require_browser, wait_until_served

TOKEN = "course-test-token"
# For each chapter, the code cells its widget needs, each found by a line of its source; the widget cell last.
WIDGET_CELLS = {
    "05_vp_sde_1d.ipynb": ["import ipywidgets as widgets", "sde, mix, eps = models.sde1d_process()",
                           "def exact_pdf(t, x):", "def forward_heatmap(", "widgets.interact("],
    "08_classifier_guidance.ipynb": ["import ipywidgets as widgets", 'vp_model, vp_entry = models.load("mnist-vpsde")',
                                     "def noisy_calls(images01):", "widgets.interact_manual("],
}


def _widget_copy(chapter: str, folder: Path) -> Path:
    """A copy of `chapter` with its Markdown cells and the code cells of WIDGET_CELLS[chapter], outputs cleared."""
    nb = json.loads((ROOT / "book" / chapter).read_text())
    keep, wanted = [], list(WIDGET_CELLS[chapter])
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            keep.append(cell)
        elif any(line in source for line in wanted):
            wanted = [line for line in wanted if line not in source]
            keep.append({**cell, "outputs": [], "execution_count": None})
    assert wanted == [], f"{chapter}: no code cell holds {wanted} (WIDGET_CELLS needs updating)"
    path = folder / chapter
    path.write_text(json.dumps({**nb, "cells": keep}, indent=1))
    return path


@pytest.fixture(scope="module")
def lab_folder(tmp_path_factory):
    """The folder JupyterLab serves and starts in; its server log is lab.log there."""
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="module")
def lab(lab_folder):
    """http://127.0.0.1:PORT of a JupyterLab serving the widget copies of chapters 5 and 8, started in their
    folder as a learner starts it (`jupyter lab` in the course's folder)."""
    require_browser("jupyterlab")
    folder = lab_folder
    for chapter in WIDGET_CELLS:
        _widget_copy(chapter, folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # one torch thread, OpenMP's and MKL's alike: the widgets' cells are small, and a kernel whose threads spin
    # against another process on the same cores runs tens of times slower
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(folder / ".jupyter")}
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"  # the venv's own
    log = open(folder / "lab.log", "w")
    proc = subprocess.Popen([jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
                             f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={folder}",
                             "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    wait_until_served(proc, f"{url}/api/status?token={TOKEN}", "jupyter lab", (folder / "lab.log").read_text, 90)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def driver(lab, tmp_path_factory):
    """Headless Chromium, offline but for 127.0.0.1, at a laptop's window."""
    d = offline_chromium(tmp_path_factory.mktemp("chromium-lab"), window="1366,900", page_timeout=90)
    yield d
    d.quit()


def _wait(what, condition, timeout: float, driver, shot: str):
    """condition() until truthy, or fail saying `what`, with a screenshot."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    driver.save_screenshot(str(SHOTS / f"jupyterlab_{shot}_failed.png"))
    pytest.fail(f"{shot}: {what} within {timeout:.0f} s (screenshot jupyterlab_{shot}_failed.png)")


def _figures(driver) -> list[str]:
    """The src of each image the widget's output holds."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.widget-interact img, .jp-OutputArea-child .widget-output img')]"
        ".map(i => i.src.slice(-200))")


def _open_and_run(driver, lab: str, chapter: str, shot: str):
    from selenium.webdriver.common.by import By

    driver.get(f"{lab}/lab/tree/{chapter}?reset&token={TOKEN}")  # reset: not the workspace of the test before
    _wait("the notebook did not open", lambda: driver.execute_script(
        "return document.querySelector('.jp-MarkdownCell h1') !== null"), 90, driver, shot)
    time.sleep(1.0)  # the menus wire up after the first render; Run All waits for the kernel itself
    driver.find_element(By.XPATH, "//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']").click()
    driver.find_element(By.XPATH, "//li[contains(@class, 'lm-Menu-item')][.//div[text()='Run All Cells']]").click()


def _page_checks(driver, shot: str):
    text = driver.execute_script("return document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)').innerText")
    at = text.find("Error displaying widget")
    assert at < 0, f"{shot}: a widget failed to display: ...{text[max(at - 300, 0):at + 200]}..."
    errors = driver.execute_script("return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="
                                   "\"application/vnd.jupyter.stderr\"]')].map(e => e.innerText)"
                                   ".filter(t => /Error|Traceback/.test(t))")
    assert errors == [], f"{shot}: error output {errors[:1]}"
    raw = [m for m in ("{cite:", "```{", ":::{") if m in text]
    assert raw == [], f"{shot}: raw MyST {raw} in the rendered notebook (is jupyterlab-myst loaded?)"


def test_chapter_5_widget_redraws_when_a_slider_moves(lab, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_and_run(driver, lab, "05_vp_sde_1d.ipynb", "ch5")
    first = _wait("the widget's figure did not appear", lambda: _figures(driver), 120, driver, "ch5")
    driver.save_screenshot(str(SHOTS / "jupyterlab_ch5.png"))
    handles = driver.find_elements(By.CSS_SELECTOR, ".widget-interact .noUi-handle")
    assert len(handles) == 4, f"ch5: {len(handles)} sliders, expected beta_min, beta_max, steps and seed"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handles[3])
    handles[3].send_keys(Keys.ARROW_RIGHT)  # seed 1 -> 2: a new draw, a new figure
    _wait("the figure did not change after the seed slider moved", lambda: _figures(driver) not in ([], first),
          120, driver, "ch5")
    driver.save_screenshot(str(SHOTS / "jupyterlab_ch5_seed2.png"))
    _page_checks(driver, "ch5")


def test_chapter_8_widget_draws_guided_digits_on_its_button(lab, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_and_run(driver, lab, "08_classifier_guidance.ipynb", "ch8")
    button = _wait("the widget's button did not appear", lambda: driver.find_elements(
        By.XPATH, "//button[contains(., 'Run Interact')]"), 180, driver, "ch8")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    first = _wait("no digits after the button was pressed", lambda: _figures(driver), 120, driver, "ch8")
    handle = driver.find_elements(By.CSS_SELECTOR, ".widget-interact .noUi-handle")[0]  # the digit
    handle.send_keys(Keys.ARROW_RIGHT)  # digit 5 -> 6
    button.click()
    _wait("the digits did not change after the digit slider moved", lambda: _figures(driver) not in ([], first),
          120, driver, "ch8")
    driver.save_screenshot(str(SHOTS / "jupyterlab_ch8.png"))
    _page_checks(driver, "ch8")


def test_lab_server_logs_no_error(lab, lab_folder, driver):
    """After the two chapters ran (this module's tests run in order), the server's log has no `[E ...]` line,
    which a learner would read as a failure. Started outside the folder it serves, Lab logged one from nbgrader's
    server extension (the course directory, the working directory, was not under the served root)."""
    errors = [line for line in (lab_folder / "lab.log").read_text().splitlines() if line.startswith("[E")]
    assert errors == [], errors
