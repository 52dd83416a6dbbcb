"""The demo Space in a real headless browser: `allmrec serve` on a loopback port, Debian's chromium driven by
selenium types a history, submits, and reads both rankings from the page; a screenshot is saved.

`make test` installs chromium + chromedriver when missing. ALLMREC_SPACE_MODEL=<checkpoint> serves that checkpoint
instead of the tiny one, and ALLMREC_SPACE_SCREENSHOT=<png> keeps the screenshot there (examples/space.png was made
so, from the ml-100k demo checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_hub import build_allmrec, save_checkpoint, tiny_llm_dir  # noqa: F401 (fixture)

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"allmrec serve exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def served(tiny_data, tiny_llm_dir, tmp_path_factory):
    model = os.environ.get("ALLMREC_SPACE_MODEL")
    if not model:
        model = str(save_checkpoint(build_allmrec(tiny_data, tiny_llm_dir, seed=7), tmp_path_factory.mktemp("space") / "ckpt"))
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "allmrec", "serve", "--model", model, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        yield f"http://127.0.0.1:{port}/", model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER and CHROMIUM, "chromium + chromedriver are missing: `make test` installs them (apt)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _pick(driver, elem_id: str, text: str) -> None:
    """Type into a Gradio multiselect dropdown and take the first matching option (what a person does)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    box = WebDriverWait(driver, 60).until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"#{elem_id} input")))
    box.click()
    box.send_keys(text)
    option = WebDriverWait(driver, 20).until(EC.element_to_be_clickable((By.CSS_SELECTOR, 'li[data-testid="dropdown-option"]')))
    option.click()
    box.send_keys(Keys.ESCAPE)


def _table_titles(driver, elem_id: str) -> list[str]:
    """The title column of a Gradio dataframe, in row order (its grid cells carry data-row / data-col)."""
    from selenium.webdriver.common.by import By

    cells = driver.find_elements(By.CSS_SELECTOR, f'#{elem_id} [role="gridcell"][data-col="1"]')
    rows = sorted((int(c.get_attribute("data-row")), c.text.strip()) for c in cells)
    return [t for _, t in rows if t]


def test_space_ranks_a_typed_history_in_a_real_browser(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, model = served
    browser.get(url)
    catalogue = json.loads((Path(model) / "item_catalogue.json").read_text())["titles"] if Path(model).is_dir() else None
    typed = [t for t in (catalogue or [])[1:4]] or ["Star Wars"]
    for title in typed:
        _pick(browser, "history", title[:12])
    watched = [e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, "#history .token")]
    assert len(watched) == len(typed), watched  # each typed prefix picked one catalogue title
    candidates = [e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, "#candidates .token")]
    browser.find_element(By.CSS_SELECTOR, "#rank").click()
    try:
        WebDriverWait(browser, 180).until(lambda d: len(_table_titles(d, "allmrec-ranking")) >= 2)
    except Exception:
        browser.save_screenshot(str(tmp_path / "timeout.png"))
        raise AssertionError("no ranking appeared; the page says: " + browser.find_element(By.TAG_NAME, "body").text[-1500:])
    llm, cf = _table_titles(browser, "allmrec-ranking"), _table_titles(browser, "cf-ranking")
    status = browser.find_element(By.CSS_SELECTOR, "#status").text
    shot = Path(os.environ.get("ALLMREC_SPACE_SCREENSHOT") or tmp_path / "space.png")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Error" not in page and "error" not in status.lower(), page[-2000:]
    assert "A-LLMRec's pick" in status, status
    assert len(llm) == len(cf) >= 2 and sorted(llm) == sorted(cf)  # both tables rank the same candidates
    assert set(llm) <= set(candidates) and not set(llm) & set(watched)  # the candidates, never a watched title
