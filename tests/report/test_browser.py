"""The report in a real headless Chromium: it loads offline without console errors, every
chart is drawn, every trait and segment is named; a screenshot is saved.

Chromium comes from the system (Debian's ``chromium`` package; ``.ci/run`` installs it).
Without one the test is skipped, unless ``FUNNELPRINT_REQUIRE_BROWSER=1`` (CI) makes that a
failure. ``FUNNELPRINT_SCREENSHOT=PATH`` also writes the screenshot to PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from funnelprint.models import load
from funnelprint.report.html import segment_labels

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Every chart on the page and what it drew: plotly's SVG layers hold marks once drawn.
CHARTS = """() => [...document.querySelectorAll('figure.chart, svg.mix')].map(el => {
  if (el.tagName.toLowerCase() === 'svg')
    return {kind: 'svg', marks: el.querySelectorAll('rect').length};
  const plot = el.querySelector('.js-plotly-plot');
  const marks = plot ? plot.querySelectorAll(
      '.cartesianlayer .trace path, .cartesianlayer .trace .point, .heatmaplayer image, '
      + '.bars .point path, .scatterlayer .point').length : 0;
  const svg = plot ? plot.querySelector('svg.main-svg') : null;
  return {kind: 'plotly', marks: marks, drawn: !!svg && svg.getBoundingClientRect().height > 0};
})"""


def browser_path() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = "no Chromium installed (apt-get install chromium): the browser test is skipped"
    if os.environ.get("FUNNELPRINT_REQUIRE_BROWSER") == "1":
        pytest.fail(message.replace("is skipped", "is required (FUNNELPRINT_REQUIRE_BROWSER)"))
    pytest.skip(message)


@pytest.fixture(scope="module")
def executable() -> str:
    """The system's Chromium (looked up before the shop is built, so a skip is quick)."""
    return browser_path()


@pytest.fixture(scope="module")
def opened(executable, shop, tmp_path_factory):
    """The report opened offline: console errors, requests, charts, text, screenshot."""
    sync_api = pytest.importorskip("playwright.sync_api")
    shot = tmp_path_factory.mktemp("browser") / "report.png"
    seen: dict = {"errors": [], "requests": []}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("requestfailed", lambda r: seen["errors"].append(f"failed {r.url}"))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.goto(shop.report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg')"
                                   ".length > 0")
            page.wait_for_timeout(500)
            seen["charts"] = page.evaluate(CHARTS)
            seen["text"] = page.inner_text("body")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    seen["screenshot"] = shot
    target = os.environ.get("FUNNELPRINT_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
    return seen


def test_page_loads_offline_without_console_errors(opened, shop):
    assert opened["errors"] == []
    assert opened["requests"] == [shop.report.as_uri()]


def test_every_chart_is_drawn(opened):
    charts = opened["charts"]
    plotly = [c for c in charts if c["kind"] == "plotly"]
    assert len(plotly) >= 10
    assert all(c["drawn"] for c in plotly)
    assert all(c["marks"] > 0 for c in charts), charts


def test_every_trait_and_segment_is_shown(opened, shop):
    profile = load(shop.model).profile_
    for info in profile.trait_info_:
        assert info["name"] in opened["text"]
    for label in segment_labels(profile.segment_summary()).values():
        assert label in opened["text"]


def test_a_screenshot_is_saved(opened):
    shot: Path = opened["screenshot"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


def test_a_browser_that_cannot_unpack_the_charts_says_so(executable, shop):
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            page = browser.new_context(offline=True).new_page()
            page.add_init_script("delete window.DecompressionStream")
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(shop.report.as_uri(), wait_until="load")
            page.wait_for_selector("#no-charts", state="visible")
            tables = page.locator("figure.chart table").count()
        finally:
            browser.close()
    assert errors == []
    assert tables >= 10  # every chart's numbers are still in the page
