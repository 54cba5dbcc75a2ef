"""The serve and ingest commands: one-line errors with exit code 2 before anything
listens; ingest loads a whole export through the reader's validation."""

from __future__ import annotations

import polars as pl
import pytest

from funnelprint.cli import run
from funnelprint.serve.store import open_store


@pytest.fixture
def cli(capsys):
    def _run(args):
        capsys.readouterr()
        code = run([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return _run


def test_ingest_loads_an_export_into_either_store(cli, shop, store_url):
    code, out, err = cli(["ingest", shop["events"], "--store", store_url])
    assert code == 0, err
    expected = pl.read_csv(shop["events"]).unique().height  # exact duplicates are dropped
    assert f"stored {expected:,} events" in out and "events/s" in out
    store = open_store(store_url)
    assert store.count() == expected
    customer = store.customer_events("u0001")
    store.close()
    assert customer.height > 0 and customer["timestamp"].is_sorted()


def test_ingest_refuses_bad_rows_like_every_command(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,timestamp,action,product_id\nu1,yesterday,view,p1\n")
    url = f"sqlite:///{tmp_path / 'e.sqlite'}"
    code, _, err = cli(["ingest", bad, "--store", url])
    assert code == 2 and "cannot parse timestamp" in err and len(err.strip().splitlines()) == 1
    # Skipping every row stores nothing: one line with the counts and the first bad value.
    code, _, err = cli(["ingest", bad, "--store", url, "--on-error", "skip"])
    assert code == 2 and "no events left to use (dropped: 1 bad_timestamp)" in err
    errors = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1 and "yesterday" in errors[0]
    good = tmp_path / "good.csv"
    good.write_text("user_id,timestamp,action,product_id\nu1,yesterday,view,p1\n"
                    "u1,1700000000,pay,p1\n")
    code, out, _ = cli(["ingest", good, "--store", url, "--on-error", "skip"])
    assert code == 0 and "stored 1 events" in out and "1 rows dropped" in out


@pytest.mark.parametrize("args, env, message", [
    ([], None, "no API key configured"),
    (["--store", "mysql://x/y"], "k" * 20 + ":write", "unknown store"),
    (["--workers", "0"], "k" * 20 + ":write", "--workers must be positive"),
    ([], "short:write", "at least 16 characters"),
    ([], "k" * 20 + ":admin", "scope must be read or write"),
])
def test_serve_refuses_to_start(cli, model_dir, monkeypatch, tmp_path, args, env, message):
    monkeypatch.chdir(tmp_path)
    if env is None:
        monkeypatch.delenv("FUNNELPRINT_API_KEYS", raising=False)
    else:
        monkeypatch.setenv("FUNNELPRINT_API_KEYS", env)
    code, _, err = cli(["serve", "--model", model_dir, *args])
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_serve_refuses_a_bad_model_directory(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNELPRINT_API_KEYS", "k" * 20 + ":read")
    code, _, err = cli(["serve", "--model", tmp_path, "--insecure"])
    assert code == 2 and "not a funnelprint model directory" in err
