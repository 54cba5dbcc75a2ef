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


# Marks and labels that run past their chart or, for bars, past every plot area of it (a bar
# longer than its axis is cut by the axis and misreads).
CLIPPED = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
  const outside = (r, box) => r.left < box.left - 1 || r.right > box.right + 1
      || r.top < box.top - 1 || r.bottom > box.bottom + 1;
  const svg = plot.querySelector('svg.main-svg').getBoundingClientRect();
  const areas = [...plot.querySelectorAll('.bglayer rect.bg')].map(
      r => r.getBoundingClientRect());
  const found = [];
  plot.querySelectorAll('.bartext, .ytick text, .xtick text, .gtitle, .annotation-text')
      .forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && outside(r, svg)) found.push('label ' + el.textContent);
  });
  plot.querySelectorAll('.bars .point path').forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && areas.length && areas.every(a => outside(r, a)))
      found.push('bar of ' + (plot.querySelector('.gtitle') || {}).textContent);
  });
  return found;
})"""


def open_report(executable: str, report: Path, shot: Path, width: int = 1400) -> dict:
    """Open ``report`` offline at ``width`` pixels: console errors, requests, charts,
    clipped marks, text; a full-page screenshot to ``shot``."""
    sync_api = pytest.importorskip("playwright.sync_api")
    seen: dict = {"errors": [], "requests": []}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": width,
                                                                  "height": 900})
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("requestfailed", lambda r: seen["errors"].append(f"failed {r.url}"))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg')"
                                   ".length > 0")
            page.wait_for_timeout(500)
            seen["charts"] = page.evaluate(CHARTS)
            seen["clipped"] = page.evaluate(CLIPPED)
            seen["text"] = page.inner_text("body")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    seen["screenshot"] = shot
    return seen


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
    seen = open_report(executable, shop.report,
                       tmp_path_factory.mktemp("browser") / "report.png")
    target = os.environ.get("FUNNELPRINT_SCREENSHOT")
    if target:
        shutil.copyfile(seen["screenshot"], target)
    return seen


def test_page_loads_offline_without_console_errors(opened, shop):
    assert opened["errors"] == []
    assert opened["requests"] == [shop.report.as_uri()]


def test_no_bar_or_label_runs_off_its_chart(opened):
    assert opened["clipped"] == []


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


def test_the_report_on_a_real_log_at_a_narrow_width(executable, tmp_path):
    """The REES46 October head: long trait names, a segment funnel with rates of 0% and
    100%, most customers cold start. At 1,000 pixels nothing runs off its chart, the
    funnel's segment labels differ, and the cold-start share is stated."""
    from tests.conftest import shared_file
    from tests.report.conftest import funnelprint

    events = shared_file("rees46/2019-Oct_head.csv")
    model, report = tmp_path / "model", tmp_path / "report.html"
    funnelprint("fit", events, "--out", model)
    funnelprint("report", "--model", model, "--events", events, "--out", report)
    seen = open_report(executable, report, tmp_path / "report.png", width=1000)
    assert seen["errors"] == [] and seen["clipped"] == []
    assert "cold start" in seen["text"] and "cold-start customers" in seen["text"]
    profile = load(model).profile_
    for info in profile.trait_info_:
        assert info["name"] in seen["text"]
    labels = list(segment_labels(profile.segment_summary()).values())
    assert len(set(labels)) == len(labels)
