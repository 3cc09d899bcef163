"""The web app in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium, against the app served by waitress on a free loopback
port over serving models trained on the tiny synthetic data. Screenshots go to
``runs/browser/`` for a person to look at."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from lib import config as C
from lib.web import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no Chromium here: `apt-get install chromium chromium-driver` enables this test")
SHOTS = C.RUNS_DIR / "browser"


@pytest.fixture(scope="module")
def server(served_tiny):
    from waitress.server import create_server
    ds, root = served_tiny
    srv = create_server(create_app(ds, root), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_pick_three_movies_get_ten_with_reasons_open_one_and_see_the_map(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(browser, 20)
    browser.get(server + "/")
    search = wait.until(ready.element_to_be_clickable((By.ID, "search")))
    picked = []
    # accents ignored in the first; the second is the title holding a script tag
    for query in ("creme brulee", "pwned", "bridge"):
        search.clear()
        search.send_keys(query)
        first = wait.until(ready.element_to_be_clickable(
            (By.CSS_SELECTOR, "#suggestions li.suggestion")))
        picked.append(int(first.get_attribute("data-movie-id")))
        first.click()
        n = len(picked)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#liked li.liked-movie")) == n)  # noqa: B023
    assert len(set(picked)) == 3 and picked[:2] == [4, 2]
    browser.find_element(By.ID, "go").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 10)
    items = browser.find_elements(By.CSS_SELECTOR, "#results li")
    reasons = [li.find_element(By.CSS_SELECTOR, ".because").text for li in items]
    assert all(r.startswith("because you liked ") for r in reasons)
    liked_titles = [li.text.rstrip("×").strip() for li in
                    browser.find_elements(By.CSS_SELECTOR, "#liked li.liked-movie")]
    assert all(any(t in r for t in liked_titles) for r in reasons)
    assert liked_titles[1].startswith("<script>")  # shown as text...
    assert browser.execute_script("return window.pwned === undefined")  # ...never run
    _shot(browser, "home")

    title = items[0].find_element(By.TAG_NAME, "a").text
    items[0].find_element(By.TAG_NAME, "a").click()
    heading = wait.until(ready.presence_of_element_located((By.TAG_NAME, "h1")))
    assert heading.text == title
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.results li")) == 10
    _shot(browser, "movie")

    browser.get(server + "/map")
    wait.until(lambda d: d.execute_script(
        "return document.querySelectorAll('#map .scatterlayer .point').length") > 0)
    points = browser.execute_script(
        "return document.querySelectorAll('#map .scatterlayer .point').length")
    assert points == browser.execute_script(
        "return document.getElementById('map').data.reduce((n, t) => n + t.x.length, 0)")
    _shot(browser, "map")
    browser.get(server + "/movies/2")  # the script title's own page
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("<script>window.pwned")
    assert browser.execute_script("return window.pwned === undefined")
