"""Bad input through the command line: every row ends in exit 2 with one line naming what
is wrong, and leaves no output behind (or an existing output unchanged)."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from pathlib import Path

import pytest

from funnelprint.data.simulate import SimulationConfig, simulate

HEADER = "user_id,timestamp,action,product_id\n"
ROWS = ["u1,2024-01-01 10:00:00,view,p1", "u1,2024-01-01 10:01:00,add_to_cart,p1",
        "u1,2024-01-01 10:02:00,purchase,p1", "u2,2024-01-02 10:00:00,view,p2",
        "u2,2024-01-02 10:03:00,view,p3", "u3,2024-01-03 10:00:00,view,p1"]


def csv_text(rows: list[str]) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


FILES: dict[str, str | bytes] = {
    "badts.csv": csv_text([ROWS[0], "u1,garbage,view,p2", *ROWS[2:]]),
    "sci.csv": HEADER + "u1,1.7041032e9,view,p1\nu1,1.70410326e9,view,p2\n",
    "old.csv": HEADER + "u1,1970-01-01 00:00:05,view,p1\nu1,2024-01-01 10:00:00,view,p2\n",
    "future.csv": HEADER + "u1,2024-01-01 10:00:00,view,p1\nu1,2199-01-01 10:00:00,view,p2\n",
    "unmatched.csv": csv_text([*ROWS[:2], 'u2,2024-01-02 10:00:00,view,"p2', *ROWS[3:]]),
    "bad.jsonl": '{"user_id":"u1","timestamp":"2024-01-01 10:00:00","action":"view",'
                 '"product_id":"p1"}\n{bad json\n',
    "object.jsonl": '{"user_id":"u1","timestamp":"2024-01-01 10:00:00","action":"view",'
                    '"product_id":{"a":1}}\n',
    "mostly_na.csv": "user_id,timestamp,action,product_id,session_id\n" + "".join(
        f"{'u1' if i < 2 else 'NA'},2024-01-01 10:0{i}:00,view,p{i},s{i}\n" for i in range(6)),
    "null.csv": csv_text([ROWS[0], *[f"u{i},2024-01-01 11:00:00,view,null" for i in range(5)]]),
    "all_bad_ts.csv": csv_text([f"u{i},06/12/2014 2pm,view,p{i}" for i in range(3)]),
    "sku.csv": "sku_id,cat_name,maker,amount\np1,shoes,acme,9.5\n",
    "latin1.csv": csv_text(ROWS).encode() + "u9,2024-01-01 10:00:00,view,café\n".encode("latin-1"),
    "header.csv": HEADER,
    "short.csv": csv_text([ROWS[0], ROWS[3]]),
    "prod_noid.csv": "category,brand,price\na,x,1\n",
    "notgzip.csv.gz": csv_text(ROWS),
    "csv.parquet": csv_text(ROWS),
    "empty.csv": "",
    "headerless.csv": "".join(r + "\n" for r in ROWS),
    "twice.csv": "user_id,user_id,timestamp,action,product_id\nu1,u2,2024-01-01 10:00:00,view,p1\n",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    shop = simulate(SimulationConfig(customers=120, products=50, seed=1)).write(root / "shop")
    for name, text in FILES.items():
        path = root / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (root / "afile").write_text("x")
    (root / "emptydir").mkdir()
    (root / "corrupt").mkdir()
    (root / "corrupt" / "manifest.json").write_text("{not json")
    from funnelprint.cli import run

    assert run(["fit", str(shop["events"]), "--out", str(root / "traits")]) == 0
    assert run(["fit", str(shop["events"]), "--out", str(root / "sasrec"), "--model-type",
                "sasrec", "--epochs", "1"]) == 0
    return {"root": root, "events": shop["events"], "products": shop["products"]}


# (id, argv, words in the message, output path that must not appear)
CASES = [
    ("ts-line-3", ["inspect", "{badts.csv}"], ["badts.csv:3", "timestamp", "garbage"], None),
    ("ts-before-1990", ["inspect", "{old.csv}"], ["old.csv:2", "out of range"], None),
    ("ts-future", ["inspect", "{future.csv}"], ["future.csv:3", "out of range"], None),
    ("unmatched-quote", ["inspect", "{unmatched.csv}"], ["unmatched quote"], None),
    ("bad-json-line", ["inspect", "{bad.jsonl}"], ["bad.jsonl:2", "not valid JSON"], None),
    ("json-object-id", ["inspect", "{object.jsonl}"], ["product_id", "JSON object"], None),
    ("mostly-missing-customer", ["inspect", "{mostly_na.csv}"],
     ["mostly_na.csv:4", "user_id", "no customer id in 4 of 6 rows (67%)",
      "--missing-customer session", "--on-error skip", "'NA'"], None),
    ("mostly-missing-product", ["inspect", "{null.csv}"],
     ["null.csv:3", "product_id", "no product id in 5 of 6 rows", "--on-error skip"], None),
    ("every-row-dropped", ["inspect", "{all_bad_ts.csv}", "--on-error", "skip"],
     ["all_bad_ts.csv: no events left to use", "3 bad_timestamp", "first:",
      "all_bad_ts.csv:2", "06/12/2014 2pm"], None),
    ("missing-customer-without-session", ["inspect", "{events}", "--missing-customer",
                                          "session"], ["needs a session column"], None),
    ("missing-customer-unknown", ["inspect", "{events}", "--missing-customer", "guess"],
     ["--missing-customer", "drop, session"], None),
    ("action-and-action-column", ["inspect", "{events}", "--action", "view", "--columns",
                                  "action=action"], ["--action view", "not both"], None),
    ("product-columns-without-products", ["fit", "{events}", "--out", "{out}",
                                          "--product-columns", "product=sku_id"],
     ["--product-columns", "--products"], "{out}"),
    ("product-columns-no-such-column", ["fit", "{events}", "--out", "{out}", "--products",
                                        "{sku.csv}", "--product-columns", "product=sku"],
     ["product=sku", "no such column", "sku_id"], "{out}"),
    ("product-columns-unknown-field", ["fit", "{events}", "--out", "{out}", "--products",
                                       "{sku.csv}", "--product-columns", "colour=maker"],
     ["--product-columns", "colour"], "{out}"),
    ("non-utf8", ["inspect", "{latin1.csv}"], ["latin1.csv:8", "UTF-8"], None),
    ("not-gzip", ["inspect", "{notgzip.csv.gz}"], ["notgzip.csv.gz", "gzip"], None),
    ("csv-as-parquet", ["inspect", "{csv.parquet}"], ["csv.parquet", "parquet"], None),
    ("directory-as-events", ["inspect", "{emptydir}"], ["emptydir"], None),
    ("empty-file", ["inspect", "{empty.csv}"], ["empty.csv"], None),
    ("actions-to-a-missing-marker", ["inspect", "{events}", "--actions", "checkout=null"],
     ["checkout=null", "not an action name"], None),
    ("rate-negative", ["inspect", "{events}", "--max-events-per-minute", "-1"],
     ["--max-events-per-minute", "-1"], None),
    ("session-gap-0", ["inspect", "{events}", "--session-gap", "0"], ["--session-gap"], None),
    ("columns-missing", ["inspect", "{events}", "--columns", "customer=nope"],
     ["customer=nope", "no such column"], None),
    ("header-names-twice", ["inspect", "{twice.csv}"], ["twice.csv:1", "more than once"], None),
    ("columns-share-a-column", ["inspect", "{events}", "--columns",
                                "customer=user_id,product=user_id"], ["same column"], None),
    ("columns-field-twice", ["inspect", "{events}", "--columns",
                             "customer=user_id,customer=product_id"], ["given twice"], None),
    ("session-gap-inf", ["inspect", "{events}", "--session-gap", "inf"], ["finite"], None),
    ("rate-nan", ["inspect", "{events}", "--max-events-per-minute", "nan"], ["finite"], None),
    ("simulate-out-is-file", ["simulate", "--out", "{afile}", "--customers", "20"],
     ["not a directory"], None),
    ("fit-too-little-data", ["fit", "{short.csv}", "--out", "{out}"],
     ["short: too few customers to profile", "add the events of at least"],
     "{out}"),
    ("fit-out-empty", ["fit", "{events}", "--out", ""], ["current directory"], None),
    ("unknown-option", ["inspect", "{events}", "--frob"], ["No such option", "--frob"], None),
    ("k-not-a-number", ["recommend", "--model", "{traits}", "--customer", "u0001", "--k", "ten"],
     ["--k", "integer"], None),
    ("model-params-for-unlisted-model", ["evaluate", "--data", "events:{events}", "--models",
                                         "pop", "--model-params", '{"sasrec": {"epochs": 1}}'],
     ["sasrec"], None),
    ("more-negatives-than-items", ["evaluate", "--data", "events:{events}", "--models", "pop",
                                   "--protocol", "loo-sampled100000"], ["sampled"], None),
    ("csv-read-as-sasrec", ["evaluate", "--data", "sasrec:{events}"], ["space-separated"],
     None),
    ("directory-read-as-recbole", ["evaluate", "--data", "recbole:{emptydir}"],
     ["is a directory"], None),
    ("names-wrong-count", ["inspect", "{headerless.csv}", "--names", "a,b,c"], ["--names"], None),
    ("time-budget-negative", ["fit", "{events}", "--out", "{out}", "--model-type", "sasrec",
                              "--time-budget", "-1"], ["--time-budget"], "{out}"),
    ("simulate-days-negative", ["simulate", "--out", "{out}", "--days", "-1"], ["--days"], "{out}"),
    ("simulate-no-customers", ["simulate", "--out", "{out}", "--customers", "0"],
     ["--customers"], "{out}"),
    ("recommend-k-0", ["recommend", "--model", "{traits}", "--customer", "u0001", "--k", "0"],
     ["--k"], None),
    ("similar-k-negative", ["similar", "--model", "{traits}", "--customer", "u0001", "--k", "-3"],
     ["--k"], None),
    ("evaluate-k-0", ["evaluate", "--data", "events:{events}", "--k", "0,5"], ["--k"], None),
    ("evaluate-k-huge", ["evaluate", "--data", "events:{events}", "--k", "1000000000"],
     ["--k"], None),
    ("protocol-sampled0", ["evaluate", "--data", "events:{events}", "--protocol",
                           "loo-sampled0"], ["sampled0", "positive"], None),
    ("protocol-unknown", ["evaluate", "--data", "events:{events}", "--protocol", "foo-full"],
     ["foo-full"], None),
    ("header-only-inspect", ["inspect", "{header.csv}"], ["header.csv", "no events"], None),
    ("header-only-fit", ["fit", "{header.csv}", "--out", "{out}"], ["no events"], "{out}"),
    ("header-only-fit-sasrec", ["fit", "{header.csv}", "--out", "{out}", "--model-type",
                                "sasrec", "--epochs", "1"], ["no events"], "{out}"),
    ("header-only-evaluate", ["evaluate", "--data", "events:{header.csv}"],
     ["header.csv", "no events in the file"], None),
    ("every-row-dropped-evaluate", ["evaluate", "--data", "events:{all_bad_ts.csv}",
                                    "--on-error", "skip"],
     ["no events left to use (dropped: 3 bad_timestamp)", "06/12/2014 2pm"], None),
    ("nothing-to-validate", ["fit", "{short.csv}", "--out", "{out}", "--model-type", "sasrec",
                             "--epochs", "1"], ["3 or more steps"], "{out}"),
    ("nobody-evaluable", ["evaluate", "--data", "events:{short.csv}"],
     ["no customer can be evaluated"], None),
    ("products-without-id", ["fit", "{events}", "--out", "{out}", "--products",
                             "{prod_noid.csv}"], ["no product id column"], "{out}"),
    ("fit-out-is-file", ["fit", "{events}", "--out", "{afile}"], ["not a directory"], None),
    ("fit-out-under-file", ["fit", "{events}", "--out", "{afile}/model"], ["afile"], None),
    ("profile-out-is-dir", ["profile", "{events}", "--model", "{traits}", "--out", "{emptydir}"],
     ["--out"], None),
    ("profile-out-xlsx", ["profile", "{events}", "--model", "{traits}", "--out", "{out}.xlsx"],
     [".parquet or .csv"], "{out}.xlsx"),
    ("heatmap-xyz", ["recommend", "--model", "{sasrec}", "--customer", "u0001", "--heatmap",
                     "{out}.xyz"], [".png"], "{out}.xyz"),
    ("model-missing", ["recommend", "--model", "{root}/nope", "--customer", "u1"], ["nope"], None),
    ("model-is-file", ["recommend", "--model", "{afile}", "--customer", "u1"], ["afile"], None),
    ("model-empty-dir", ["recommend", "--model", "{emptydir}", "--customer", "u1"],
     ["emptydir"], None),
    ("model-corrupt-manifest", ["recommend", "--model", "{corrupt}", "--customer", "u1"],
     ["corrupt"], None),
]


def fill(text: str, env: dict, out: Path) -> str:
    root = env["root"]
    names = {n: root / n for n in [*FILES, "afile", "emptydir", "corrupt", "traits", "sasrec"]}
    names.update(root=root, out=out, events=env["events"], products=env["products"])
    return re.sub(r"\{([^}]+)\}", lambda m: str(names.get(m.group(1), m.group(0))), text)


@pytest.mark.parametrize("argv, words, output",
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(cli, env, tmp_path, argv, words, output):
    out = tmp_path / "out"
    args = [fill(a, env, out) for a in argv]
    started = time.monotonic()
    result = cli(args)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines()
              if line.lower().startswith("error")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert fill(word, env, out) in " ".join(result.stderr.split()), result.stderr
    if output is not None:
        assert not Path(fill(output, env, out)).exists()
    if (args[0] == "profile" and "--out" in argv) or "--heatmap" in argv:
        assert time.monotonic() - started < 5, "refused only after the work"


def test_timestamp_skip_keeps_the_other_rows(cli, env):
    result = cli(["inspect", env["root"] / "badts.csv", "--on-error", "skip", "--json"])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["events"] == 5 and summary["dropped"].get("bad_timestamp") == 1


def test_bad_json_line_skip_keeps_the_rest(cli, env):
    result = cli(["inspect", env["root"] / "bad.jsonl", "--on-error", "skip", "--json"])
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["events"] == 1


@pytest.mark.parametrize("name, body, first", [
    ("epochs.csv", HEADER + "u1,1704103200,view,p1\nu1,1704103260000,view,p2\n", "2024-01-01"),
    ("sci.csv", None, "2024-01-01"),
    ("cr.csv", csv_text(ROWS).replace("\n", "\r"), "2024-01-01"),
    ("quoted.csv", '"user_id","timestamp","action","product, id"\n'
     + "".join(r.rsplit(",", 1)[0] + f',"{r.rsplit(",", 1)[1]}"\n' for r in ROWS), "2024-01-01"),
])
def test_awkward_but_valid_files_read_correctly(cli, env, tmp_path, name, body, first):
    path = env["root"] / name if body is None else tmp_path / name
    if body is not None:
        path.write_text(body, newline="")
    extra = ["--columns", 'customer=user_id,"product=product, id"'] if "quoted" in name else []
    result = cli(["inspect", path, "--json", *extra])
    assert result.code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["events"] >= 2 and not summary["dropped"]
    assert str(summary["time_range"]["first"]).startswith(first)


def test_numeric_json_ids_print_as_json(cli, tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text('{"user_id":1,"timestamp":1704103200,"action":"view","product_id":5}\n'
                    '{"user_id":1,"timestamp":1704103260,"action":"view","product_id":6}\n')
    result = cli(["inspect", path, "--json"])
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["events"] == 2


def test_checkout_as_buy_counts_purchases(cli, env, tmp_path):
    path = tmp_path / "checkout.csv"
    path.write_text(csv_text(ROWS).replace("purchase", "checkout"))
    result = cli(["inspect", path, "--actions", "checkout=buy", "--json"])
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["actions"]["purchase"] == 1


@pytest.mark.parametrize("products", ["product_id,category,price\np0001,a,1\n",
                                      "product_id,brand\np0001,x\n", "product_id\np0001\n",
                                      "product_id,category,brand,price\np0001,a,x,abc\n"
                                      "p0002,b,y,2\n"])
def test_partial_products_files_fit(cli, env, tmp_path, products):
    path = tmp_path / "products.csv"
    path.write_text(products)
    result = cli(["fit", env["events"], "--out", tmp_path / "m", "--products", path])
    assert result.code == 0, result.output
    if "abc" in products:
        assert "bad_price" in result.stderr


@pytest.mark.parametrize("model", ["traits", "sasrec"])
def test_recommend_huge_k_is_bounded_by_the_catalogue(cli, env, model):
    result = cli(["recommend", "--model", env["root"] / model, "--customer", "u0001", "--k",
                  "1000000000", "--json"])
    assert result.code == 0, result.output
    assert 0 < len(json.loads(result.stdout)) <= 50


def test_similar_huge_k_is_strict_json_without_the_customer(cli, env):
    result = cli(["similar", "--model", env["root"] / "traits", "--customer", "u0001", "--k",
                  "1000000", "--json"])
    assert result.code == 0, result.output

    def refuse(constant):
        raise ValueError(constant)

    rows = json.loads(result.stdout, parse_constant=refuse)
    assert 0 < len(rows) <= 119
    assert all("u0001" not in row.values() for row in rows)


def test_read_only_output_directory(cli, env, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        writable = os.access(locked, os.W_OK)  # root writes anywhere: use a file as parent
        target = env["root"] / "afile" / "model" if writable else locked / "model"
        result = cli(["fit", env["events"], "--out", target])
    finally:
        os.chmod(locked, 0o755)
    assert result.code == 2 and "Traceback" not in result.output
    assert not target.exists()


def test_failed_fit_leaves_the_existing_model_intact(cli, env, tmp_path):
    out = tmp_path / "model"
    assert cli(["fit", env["events"], "--out", out]).code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = cli(["fit", env["root"] / "header.csv", "--out", out])
    assert result.code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert cli(["traits", "--model", out, "--json"]).code == 0


def test_gzip_and_library_warnings_stay_quiet(cli, env, tmp_path):
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(Path(env["events"]).read_bytes()))
    result = cli(["fit", path, "--out", tmp_path / "m", "--traits", "12"])
    assert result.code == 0, result.output
    assert "Warning" not in result.stderr and "RuntimeWarning" not in result.stderr
