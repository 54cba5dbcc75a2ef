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




def test_a_model_that_cannot_fit_gets_its_row_and_the_others_are_evaluated(cli, tmp_path):
    # Four customers: too few for a trait profile, enough for the baselines.
    path = tmp_path / "tiny.csv"
    rows = ["user_id,timestamp,action,product_id"]
    rows += [f"c{c},2024-01-0{1 + t} 10:00:00,view,p{(c + t) % 6}" for c in range(4)
             for t in range(5)]
    path.write_text("\n".join(rows) + "\n")
    result = cli(["evaluate", "--data", f"events:{path}", "--models", "traits,pop,markov",
                  "--protocol", "last-new-full", "--json"])
    assert result.code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["models"]["traits"]["error"].startswith("cannot fit: ")
    assert "NDCG@10" in record["models"]["pop"] and "NDCG@10" in record["models"]["markov"]
    assert record["split"]["kind"] == "last-new" and "catalogue_items" in record["split"]
    shown = cli(["evaluate", "--data", f"events:{path}", "--models", "traits,pop",
                 "--protocol", "last-new-full"])
    assert shown.code == 0 and "traits: cannot fit" in " ".join(shown.stdout.split())
    alone = cli(["evaluate", "--data", f"events:{path}", "--models", "traits",
                 "--protocol", "last-new-full"])
    assert alone.code == 2 and "no model could be fitted" in alone.stderr
