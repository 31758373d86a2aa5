"""TensorBoard on a real training's logs, read in headless Chromium as a learner reads it (issue #29, part two).

A short training of `moons-ddpm` (its fast budget cut to 200 steps, 50 of them warm-up) writes its log
(`train --log-dir`); `tensorboard --logdir` serves it on 127.0.0.1, and the browser of tests/test_browser.py,
offline, opens its time-series dashboard. The test asserts that the cards of the loss, the learning rate, the
gradient norm and the training speed are drawn, that the sample figure shows, and that the console has no error,
and saves the screenshot that the appendix on performance shows (`_build/browser/tensorboard.png`; copied to
`book/images/tensorboard.png` by hand). Skipped, with the reason, where Chromium or TensorBoard is missing, unless
COURSE_REQUIRE_BROWSER=1 (set by `.ci/run`).
"""

import dataclasses
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_browser import SHOTS, offline_chromium, require_browser, wait_until_served

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """http://127.0.0.1:PORT of a TensorBoard serving a fast moons-ddpm training's log."""
    require_browser("tensorboard")
    from helpers import models

    logs = tmp_path_factory.mktemp("logs")
    spec = models.get("moons-ddpm")
    with pytest.MonkeyPatch.context() as patch:  # 200 steps, 50 of warm-up: curves enough for the test
        patch.setitem(models.REGISTRY, "moons-ddpm", dataclasses.replace(spec, fast={**spec.fast, "steps": 200, "warmup": 50}))
        models.train_model("moons-ddpm", "fast", folder=tmp_path_factory.mktemp("checkpoints"), progress=False,
                           evaluate=False, log_dir=logs)
    port = _free_port()
    tensorboard = shutil.which("tensorboard", path=str(Path(sys.executable).parent))  # the venv's own
    proc = subprocess.Popen([tensorboard or "tensorboard", "--logdir", str(logs), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_served(proc, url, "tensorboard", proc.stderr.read)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(board, tmp_path_factory):
    driver = offline_chromium(tmp_path_factory.mktemp("chromium-profile"), window="1500,1700")
    yield driver
    driver.quit()


def _wait_for(driver, script: str, seconds: float = 30.0):
    """The first truthy result of `script` within `seconds` (polled), or the last falsy one."""
    deadline = time.time() + seconds
    while True:
        value = driver.execute_script(script)
        if value or time.time() > deadline:
            return value
        time.sleep(0.5)


def test_tensorboard_draws_the_training_curves_offline(board, browser):
    browser.get(f"{board}/#timeseries")
    text = _wait_for(browser, "const t = document.body.innerText; return ['grad_norm', 'loss', 'lr', 'steps_per_s', "
                              "'samples'].every(w => t.includes(w)) && document.querySelectorAll('canvas, svg').length > 20 ? t : ''")
    assert text, "the time-series dashboard did not show the run's tags and charts"
    browser.execute_script("document.querySelector('button[aria-label=\"Close side pane\"]')?.click();")
    time.sleep(3)  # let the charts finish drawing before the screenshot
    browser.save_screenshot(str(SHOTS / "tensorboard.png"))
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_tensorboard_shows_the_sample_figure(board, browser):
    browser.get(f"{board}/#timeseries")
    loaded = _wait_for(browser, "return [...document.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 100)")
    assert loaded, "the time-series dashboard shows no sample figure"
