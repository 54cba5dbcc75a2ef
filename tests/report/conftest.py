"""One small simulated shop, its fitted models and leaderboard, and its report, shared by
the report tests."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from funnelprint.cli import run


@dataclass
class Shop:
    data: Path
    model: Path
    sequential: Path
    leaderboard: Path
    report: Path


def funnelprint(*args: object) -> str:
    """Run a command in-process; its stdout, or a failure with its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    assert code == 0, f"funnelprint {args} failed ({code}): {out.getvalue()}{err.getvalue()}"
    return out.getvalue()


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("shop")
    data, model, seq = root / "data", root / "model", root / "sasrec"
    funnelprint("simulate", "--out", data, "--customers", 150, "--products", 80, "--seed", 1)
    events, products = data / "events.csv", data / "products.csv"
    funnelprint("fit", events, "--products", products, "--out", model, "--traits", 4)
    funnelprint("fit", events, "--out", seq, "--model-type", "sasrec", "--time-budget", 3,
                "--epochs", 2)
    board = root / "board.json"
    board.write_text(funnelprint("evaluate", "--data", f"events:{events}", "--models",
                                 "pop,markov", "--protocol", "loo-full", "--json"))
    report = root / "report.html"
    funnelprint("report", "--model", model, "--events", events, "--products", products,
                "--leaderboard", board, "--sequential", seq, "--out", report)
    return Shop(data, model, seq, board, report)
