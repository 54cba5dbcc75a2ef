"""evaluate from the command line."""

from __future__ import annotations

import json


def test_cli_evaluate_json(cli, tmp_path):
    path = tmp_path / "v.txt"
    lines = [f"{c} {(c + t) % 25 + 1}" for c in range(1, 80) for t in range(6)]
    path.write_text("\n".join(lines) + "\n")
    result = cli(["evaluate", "--data", f"sasrec:{path}", "--models",
                                      "pop,markov", "--protocol", "loo-full", "--json",
                                      "--markdown", str(tmp_path / "board.md")])
    assert result.code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["protocol"] == "loo-full"
    assert set(record["models"]) == {"pop", "markov"}
    for key in ("HR@10", "NDCG@10", "MRR", "fit_seconds", "score_seconds"):
        assert key in record["models"]["markov"]
    assert record["models"]["markov"]["HR@10"] > record["models"]["pop"]["HR@10"]
    assert "| markov |" in (tmp_path / "board.md").read_text()


