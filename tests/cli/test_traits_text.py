"""What ``traits``, ``similar`` and ``report`` print on a real month of the REES46 cosmetics
shop: labelled ids, the lines behind each name, cold start said, prices used without
categories."""

from __future__ import annotations

import json
import re

import pytest

from funnelprint.cli.profiles import _shown_lines
from funnelprint.models import load
from tests.conftest import shared_file

MONTH = "rees46-cosmetics/data_2023_feb.csv"


@pytest.fixture(scope="module")
def feb(tmp_path_factory):
    from funnelprint.cli import run

    out = tmp_path_factory.mktemp("feb") / "model"
    assert run([str(a) for a in ["fit", shared_file(MONTH), "--products",
                                 shared_file("rees46-cosmetics/item.csv"), "--out", out]]) == 0
    return out


def test_category_ids_are_labelled_with_their_field(cli, feb):
    result = cli(["traits", "--model", feb])
    assert result.code == 0, result.output
    categories = [line for line in result.stdout.splitlines()
                  if line.strip().startswith("categories")]
    assert categories
    for line in categories:
        # never a bare 19-digit id: "category 1487580005427839744"
        assert not re.search(r"(^|, )\d{19}", line.split("categories", 1)[1].strip()), line


def test_every_line_behind_a_name_is_printed_first():
    lines = [{"reads": f"w{i}", "backs_name": i >= 4} for i in range(7)]
    shown = _shown_lines(lines)
    assert [line["reads"] for line in shown] == ["w4", "w5", "w6", "w0"]
    backing = [{"reads": f"b{i}", "backs_name": True} for i in range(6)]
    assert len(_shown_lines(backing)) == 6  # all of them, beyond the usual four


def test_similar_refuses_a_cold_start_customer_with_one_line(cli, feb):
    profile = load(feb).profile_
    cold = str(profile.customer_ids_[profile.customer_cold_][0])
    result = cli(["similar", "--model", feb, "--customer", cold, "--json"])
    assert result.code == 2 and result.stdout == ""
    assert "cold start" in result.stderr and "guess" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_report_refuses_too_many_customers_on_one_finished_line(cli, feb, tmp_path):
    result = cli(["report", "--model", feb, "--out", tmp_path / "r.html",
                  "--customers", "200"])
    assert result.code == 2
    assert result.stderr.endswith("\n") and "--customers" in result.stderr


def test_prices_without_categories_are_compared_shop_wide(cli, tmp_path):
    out = tmp_path / "m"
    result = cli(["fit", shared_file(MONTH), "--out", out])
    assert result.code == 0, result.output
    assert "shop-wide" in result.stderr
    summary = json.loads(cli(["traits", "--model", out, "--json"]).stdout)
    assert not {f for f in summary["left_out"] if "price" in f}
    assert all("viewed_price" in t["figures"] for t in summary["traits"])
    for trait in summary["traits"]:
        for line in trait["evidence"]:
            if "price" in line["figure"]:
                assert "among all products" in line["description"]
