"""simulate and inspect from the command line."""

from __future__ import annotations

import json


def test_cli_simulate_then_inspect_json(cli, tmp_path):
    out = tmp_path / "sim"
    result = cli(["simulate", "--out", str(out), "--customers", "100",
                                 "--products", "50", "--seed", "1"])
    assert result.code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"events.csv", "products.csv", "truth.csv"}
    result = cli(["inspect", str(out / "events.csv"), "--json"])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("events", "customers", "products", "sessions", "actions", "dropped"):
        assert key in summary
    assert summary["customers"] == 100
    assert set(summary["actions"]) >= {"view", "add_to_cart", "remove_from_cart", "purchase"}
    assert sum(summary["actions"].values()) == summary["events"]
    assert summary["session_filter"]["sessions"] == summary["sessions"]


def test_cli_bad_row_exits_nonzero_with_location(cli, write):
    path = write("bad.csv", "user_id,timestamp,action,product_id\nu,yesterday,view,p\n")
    result = cli(["inspect", str(path)])
    assert result.code == 2
    assert "bad.csv:2" in result.output and "timestamp" in result.output
    # Skipping every row leaves nothing to inspect: one line with the counts, exit 2.
    result = cli(["inspect", str(path), "--on-error", "skip", "--json"])
    assert result.code == 2
    assert "no events left to use (dropped: 1 bad_timestamp)" in result.stderr
    assert "bad.csv:2: column 'timestamp'" in result.stderr and "yesterday" in result.stderr


def test_cli_names_for_headerless(cli, write):
    path = write("h.csv", "1700000000000,alice,view,42\n1700000001000,alice,purchase,42\n")
    result = cli(["inspect", str(path), "--names", "ts,user,event,item", "--json"])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["timestamp_encoding"] == "epoch-ms"
    assert summary["actions"]["purchase"] == 1


def test_cli_inspect_reads_an_export_as_it_comes(cli, write):
    path = write("views.csv", "sessionId;userId;itemId;eventdate;type\n"
                 "1;NA;81766.0;2016-05-09;pay\n2;7;31331.0;2016-05-09 02;fav\n"
                 "2;7;31331;2016/05/09;Add-To-Cart\n3;NA;5;20160510;PV\n")
    result = cli(["inspect", str(path), "--missing-customer", "session", "--json"])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events"] == 4 and not summary["dropped"]
    assert summary["customers"] == 3 and summary["products"] == 3
    assert summary["actions"] == {"view": 1, "add_to_cart": 1, "remove_from_cart": 0,
                                       "purchase": 1, "favorite": 1}
    assert summary["action_mapping"] == {"add-to-cart": "add_to_cart", "fav": "favorite",
                                         "pay": "purchase", "pv": "view"}
    assert summary["normalised"] == {"product_id": 2}
    assert summary["filled"] == {"customer_id_from_session": 2}
    assert summary["warnings"] == []
    table = cli(["inspect", str(path), "--missing-customer", "session"])
    assert "pay→purchase" in table.stdout and "float ids read as integers" in table.stdout
    # A view log without an action column, with every action given.
    views = write("v.csv", "user_id,timestamp,item_id\nu1,2014-12-06 02,i1\nu2,2014-12-06,i2\n")
    result = cli(["inspect", str(views), "--action", "view", "--json"])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["actions"]["view"] == 2 and summary["mapping"]["action"] == "constant: view"
