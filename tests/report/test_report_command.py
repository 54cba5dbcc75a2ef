"""``funnelprint report``: the page it writes, what it refuses, and that it is offline."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from funnelprint.models import load
from funnelprint.report.html import segment_labels

from ..cli.conftest import cli  # noqa: F401  (the fixture)


def test_report_names_every_trait_and_segment(shop):
    page = shop.report.read_text(encoding="utf-8")
    profile = load(shop.model).profile_
    for info in profile.trait_info_:
        assert f"<h3>{info['name']}</h3>" in page
    for label in segment_labels(profile.segment_summary()).values():
        assert label in page
    for section in ("data", "traits", "segments", "customers", "models"):
        assert f'<section id="{section}">' in page


def test_report_states_the_leaderboard_protocol_and_tie_rule(shop):
    page = shop.report.read_text(encoding="utf-8")
    record = json.loads(shop.leaderboard.read_text())
    assert "protocol <b>loo-full</b>" in page
    assert "ties <b>pessimistic</b>" in page
    assert f"{record['models']['markov']['NDCG@10']:.4g}" in page


def test_report_compares_the_model_with_the_baselines_on_its_log(shop):
    page = shop.report.read_text(encoding="utf-8")
    assert "Leaderboard: events.csv (this log)" in page
    assert "protocol <b>last-new-full</b>" in page
    assert "last product new to them held out" in page
    assert "products in the training catalogue" in page
    compared = page.split("Leaderboard: events.csv (this log)")[1].split("Leaderboard:")[0]
    for model in ("traits", "pop", "itemknn", "markov"):
        assert f"<td>{model}</td>" in compared


class Links(HTMLParser):
    """Every element's attribute that could load something (script bodies, where plotly.js
    keeps the addresses of map tiles it never uses here, are not markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.targets += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "data")]


def test_report_is_self_contained_and_small(shop):
    page = shop.report.read_text(encoding="utf-8")
    links = Links()
    links.feed(page)
    assert "script" in links.tags and "svg" in links.tags
    assert not {"link", "img", "iframe", "object"} & links.tags
    assert links.targets and all(t.startswith("#") for t in links.targets)
    styles = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert styles and not any("url(" in s or "@import" in s for s in styles)
    assert shop.report.stat().st_size < 3 * 2**20  # plotly.js is stored compressed


def test_report_without_events_or_extras(shop, tmp_path, cli):  # noqa: F811
    out = tmp_path / "bare.html"
    result = cli(["report", "--model", shop.model, "--out", out])
    assert result.code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "No event file was given" in page
    assert "No leaderboard was given" in page
    assert "No sequential model was given" in page
    assert "<h3>customer " in page  # journeys fall back to the model's steps


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "{tmp}/r.txt"], "must end in .html"),
    (["--out", "{tmp}/r.html", "--leaderboard", "{tmp}/bad.json"], "not JSON"),
    (["--out", "{tmp}/r.html", "--leaderboard", "{tmp}/other.json"], "not a leaderboard"),
    (["--out", "{tmp}/r.html", "--sequential", "{model}"], "holds a 'traits' model"),
    (["--out", "{tmp}/r.html", "--events", "{tmp}/missing.csv"], "missing.csv"),
])
def test_bad_inputs_fail_with_one_line(shop, tmp_path, cli, args, message):  # noqa: F811
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    filled = [a.format(tmp=tmp_path, model=shop.model) for a in args]
    result = cli(["report", "--model", shop.model, *filled])
    assert result.code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_a_sequential_model_is_refused_as_the_trait_model(shop, tmp_path, cli):  # noqa: F811
    result = cli(["report", "--model", shop.sequential, "--out", tmp_path / "r.html"])
    assert result.code == 2
    assert "profiles come from a 'traits' model" in result.stderr


def test_events_of_other_customers_still_give_journeys(shop, tmp_path, cli):  # noqa: F811
    import polars as pl

    events = pl.read_csv(shop.data / "events.csv", schema_overrides={"user_id": pl.String})
    few = tmp_path / "few.csv"
    events.filter(pl.col("user_id") == events["user_id"][0]).write_csv(few)
    out = tmp_path / "few.html"
    result = cli(["report", "--model", shop.model, "--events", few, "--out", out])
    assert result.code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("last 30 events</caption>") >= 1
    assert not re.search(r"last 30 events</caption><thead>.*?</thead><tbody></tbody>", page)
    assert "<td>everyone</td><td>" in page


def test_events_of_other_customers_are_reported_as_such(shop, cli, tmp_path):  # noqa: F811
    import polars as pl

    events = pl.read_csv(shop.data / "events.csv", schema_overrides={"user_id": pl.String})
    other = tmp_path / "other.csv"
    events.head(200).with_columns(("x" + pl.col("user_id")).alias("user_id")).write_csv(other)
    result = cli(["report", "--model", shop.model, "--events", other,
                  "--out", tmp_path / "other.html"])
    assert result.code == 0, result.output
    assert "customers of the model" in result.output and "only 0 of" in result.output
    same = cli(["report", "--model", shop.model, "--events", shop.data / "events.csv",
                "--out", tmp_path / "same.html"])
    assert same.code == 0 and "customers of the model" not in same.output
