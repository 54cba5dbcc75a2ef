"""The report a marketer opens in a browser: one self-contained HTML file (styles, data and
plotly.js inlined, nothing fetched when opened) with five sections: the data that was read,
one card per trait, the segments and their funnels, example customers, and the models.

>>> from funnelprint.report.html import write_report
>>> write_report("report.html", model, log=log, leaderboards=[("board.json", record)])
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from funnelprint.data.pipeline import EventLog
from funnelprint.evaluate.leaderboard import HEADLINE
from funnelprint.models.neural.base import SequentialRecommender
from funnelprint.models.serving import answer_known, recommend_customer
from funnelprint.models.traits import TraitsRecommender
from funnelprint.profile.naming import readable
from funnelprint.report import charts, content

Leaderboard = tuple[str, dict[str, Any]]
TIE_RULES = {"pessimistic": "a target tied with other items is ranked after all of them",
             "optimistic": "a target tied with other items is ranked before all of them"}


def write_report(path: str | Path, model: TraitsRecommender, log: EventLog | None = None,
                 products: pl.DataFrame | None = None,
                 leaderboards: Sequence[Leaderboard] = (),
                 sequential: SequentialRecommender[Any, Any] | None = None,
                 examples: int = 4) -> Path:
    """Write :func:`build_report`'s page to ``path`` (through a temporary file, so a failed
    run leaves no half-written report) and return the path."""
    page = build_report(model, log, products, leaderboards, sequential, examples)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return path


def build_report(model: TraitsRecommender, log: EventLog | None = None,
                 products: pl.DataFrame | None = None,
                 leaderboards: Sequence[Leaderboard] = (),
                 sequential: SequentialRecommender[Any, Any] | None = None,
                 examples: int = 4) -> str:
    """The whole page for a fitted ``traits`` model. ``log``: the event file (the data
    section, the funnels and the journeys need it; without it journeys come from the
    model's collapsed steps); ``products``: a products table (categories on hover);
    ``leaderboards``: (source name, ``evaluate --json`` record) pairs; ``sequential``: a
    fitted sequential model whose attention is drawn for the example customers."""
    profile = model.profile_
    labels = segment_labels(profile.segment_summary())
    shown = content.segment_examples(profile, model.dataset_, examples)
    customers = [e.customer for e in shown if e.customer is not None]
    sections = [
        ("data", "Data", data_section(log, products)),
        ("traits", "Traits", traits_section(model)),
        ("segments", "Segments", segments_section(model, log, labels)),
        ("customers", "Customers", customers_section(model, log, products, customers, labels,
                                                     shown)),
        ("models", "Models", models_section(leaderboards, sequential, customers)),
    ]
    return page(sections, model)


# ------------------------------------------------------------------ sections


def data_section(log: EventLog | None, products: pl.DataFrame | None) -> str:
    if log is None:
        return note("No event file was given (--events FILE): the data summary, the segment "
                    "funnels and full journeys need it.")
    o = content.data_overview(log)
    span = o["time_range"]
    facts = [("file", o["path"]), ("rows read", o["rows_read"]), ("events", o["events"]),
             ("customers", o["customers"]), ("products", o["products"]),
             ("sessions", o["sessions"]),
             ("time range", f"{_day(span.get('first'))} – {_day(span.get('last'))}")]
    if products is not None:
        described = [c for c in ("category", "brand", "price") if c in products.columns]
        facts.append(("products file", f"{products.height:,} products"
                      + (f" with {', '.join(described)}" if described else "")))
    actions = {k: v for k, v in o["actions"].items() if v} | o["other_actions"]
    dropped = o["dropped"]
    parts = [
        kpis(facts),
        grid(
            figure(charts.bars(list(actions), list(actions.values()), "Events by action",
                               "events", [charts.ACTION_COLOURS.get(a, "#999") for a in actions]),
                   table(["action", "events"], actions.items())),
            block("Dropped rows by reason",
                  table(["reason", "rows"], sorted(dropped.items(), key=lambda r: -r[1]))
                  if dropped else note("No row was dropped.")),
        ),
        grid(
            figure(charts.histogram(o["session_hist"], "Session length", "events per session"),
                   table(["percentile", "events"], o["session_length"].items())),
            figure(charts.histogram(o["journey_hist"], "Journey length", "events per customer"),
                   table(["percentile", "events"], o["journey_length"].items())),
        ),
        figure(charts.per_day(o["per_day"]),
               table(["day", "action", "events"], o["per_day"].iter_rows())),
    ]
    return "".join(parts)


def traits_section(model: TraitsRecommender) -> str:
    profile = model.profile_
    population = content.population_action_mix(profile)
    reach = content.trait_reach(profile)
    cards = [trait_card(info, population, row)
             for info, row in zip(profile.trait_info_, reach.iter_rows(named=True), strict=True)]
    cold = profile.cold_start_share()
    intro = note(
        f"{len(cards)} traits. A profile is each customer's share of every trait; 'leaning' "
        f"counts customers with at least {content.LEAN_SHARE:.0%} on a trait. Each trait's "
        "evidence comes from its typical customers, the tenth of the customers profiled from "
        "their own events who lean on it most, counted from their raw events beside "
        "everyone's: a line is shown only where the 95% interval of their figure lies wholly "
        "above or below everyone's value. Cold-start customers (too few known events: "
        f"{cold:.0%} of all) are left out of the evidence and the segments; their profile is "
        "a guess.")
    left_out = getattr(profile, "left_out_", {})
    if left_out:
        intro += note("Not claimed, because this log cannot show it: " + "; ".join(
            f"{feature} ({why})" for feature, why in left_out.items()) + ".")
    chart = figure(charts.reach(reach), table(
        ["trait", "largest trait of", "leaning", "mean share"],
        [(r["name"], r["leading"], r["leaning"], f"{r['mean_share']:.1%}")
         for r in reach.iter_rows(named=True)]), height=120 + 28 * reach.height)
    return intro + f'<div class="cards">{"".join(cards)}</div>' + chart


def trait_card(info: dict[str, Any], population: dict[str, float], reach: dict[str, Any]
               ) -> str:
    kind = info.get("kind", "taste")
    share = info.get("behaviour_share")
    backing = [e for e in info.get("evidence", []) if e.get("backs_name")]
    evidence = [*backing, *(e for e in info.get("evidence", []) if not e.get("backs_name"))
                ][:max(5, len(backing))]  # what backs the name first, all of it
    rows = [(e["reads"], e.get("description", e["feature"]),
             _interval(e["value"], e.get("low"), e.get("high")), _num(e["population"]),
             f"×{e['lift']:.2f}" if isinstance(e.get("lift"), int | float) else "—")
            for e in evidence]
    lists = [(label, [v if not field_ or readable(str(v)) else f"{field_} {v}"
                      for v in info.get(key, [])[:5]]) for label, key, field_ in
             (("categories", "top_categories", "category"), ("brands", "top_brands", "brand"),
              ("products", "top_products", ""))]
    everyone_mix = info.get("population_action_mix") or population
    typical = info.get("typical_customers")
    bands = info.get("price_bands") or {}
    return (
        f'<article class="card trait"><h3>{esc(info["name"])}</h3>'
        f'<p class="meta"><span class="badge {esc(kind)}">{esc(kind)}</span> '
        f'{esc(info["trait"])}'
        + (f" · {share:.0%} of its weight on behaviour" if isinstance(share, float) else "")
        + f' · <b>{reach["leaning"]:,}</b> customers lean on it, '
        f'<b>{reach["leading"]:,}</b> most of all</p>'
        + (f'<p class="meta">evidence from its {typical["customers"]:,} typical customers '
           f'(of {typical["of_warm"]:,} profiled from their events)</p>' if typical else "")
        + (table(["reads", "figure", "typical (95% interval)", "everyone", "lift"], rows)
           if rows else note("No figure of its typical customers stands apart from "
                             "everyone's by more than its interval."))
        + "".join(f'<p><span class="label">{label}</span> {esc(", ".join(map(str, items)))}'
                  "</p>" for label, items in lists if items)
        + f'<p><span class="label">action mix</span> {esc(_shares(info["action_mix"]))}<br>'
        f'<span class="label">everyone</span> {esc(_shares(everyone_mix))}</p>'
        + charts.mix_svg(info["action_mix"], everyone_mix)
        + (f'<p><span class="label">price bands</span> {esc(_shares(bands))} of viewed '
           f'products<br><span class="label">everyone</span> '
           f'{esc(_shares(info.get("population_price_bands", {})))}</p>' if bands else "")
        + "</article>"
    )


def _shares(shares: dict[str, float]) -> str:
    return " · ".join(f"{k} {v:.0%}" for k, v in shares.items())


def _interval(value: Any, low: Any, high: Any) -> str:
    if low is None or high is None:
        return _num(value)
    return f"{_num(value)} ({_num(low)}–{_num(high)})"


def segments_section(model: TraitsRecommender, log: EventLog | None,
                     labels: dict[int, str]) -> str:
    profile = model.profile_
    summary = profile.segment_summary()
    total = max(1, sum(s["customers"] for s in summary))
    cold = sum(s.get("cold_start", 0) for s in summary)
    points = content.segment_map(profile)
    parts = [note(f"{len(summary)} segments: k-means on the profiles of the {total:,} "
                  "customers profiled from their own events. "
                  f"{cold:,} cold-start customers ({cold / max(1, total + cold):.0%} of all) "
                  "have too few known events for a profile of their own: each is placed by "
                  "a guess and counted apart, not in the segment's size, share or funnel. "
                  "On the map each point is a customer profiled from their events (up to "
                  "4,000 shown); hover for the leading traits. Funnel rates are shares of "
                  "customer-product pairs (of those viewed, or of those carted), abandoned "
                  "visits the share of visits with an add to cart and no purchase."),
             figure(charts.segment_map(points, labels), height=560)]
    funnel_rows: dict[int, dict[str, Any]] = {}
    rates: list[tuple[str, str]] = []
    if log is not None:
        funnels = content.segment_funnels(log.events, content.customer_segments(profile))
        short = content.short_segment_labels(profile)
        funnel_rows = {int(r["segment"]): r for r in funnels.iter_rows(named=True)}
        has_removals = (log.events["action"] == "remove_from_cart").any()
        rates = [r for r in content.FUNNEL_RATES if funnels[r[0]].null_count() < funnels.height
                 and (has_removals or r[0] != "removal")]
        parts.append(figure(charts.funnels(funnels, short, rates),
                            height=110 + 24 * funnels.height))
    rate_heads = [label for _, label in rates]
    rows = []
    for seg in [*summary, {"segment": -1, "customers": total, "cold_start": cold,
                           "traits": {}}]:
        s = seg["segment"]
        lead = ", ".join(f"{k} {v:.0%}" for k, v in seg["traits"].items())
        funnel = funnel_rows.get(s, {})
        rows.append([labels.get(s, "everyone"), f"{seg['customers']:,}",
                     f"{seg['customers'] / total:.1%}", f"{seg.get('cold_start', 0):,}",
                     lead or "—", *[_pct(funnel.get(c)) for c, _ in rates]])
    parts.append(table(["segment", "customers", "share", "cold start (guessed)",
                        "leading traits", *rate_heads], rows))
    if log is None:
        parts.append(note("Give --events FILE for each segment's funnel."))
    return "".join(parts)


def customers_section(model: TraitsRecommender, log: EventLog | None,
                      products: pl.DataFrame | None, customers: Sequence[str],
                      labels: dict[int, str], shown: Sequence[content.Example] = ()) -> str:
    missing = "".join(note(f"Segment {esc(labels.get(e.segment, e.segment))}: {esc(e.why)}, "
                           "so none is shown.") for e in shown if e.customer is None)
    if not customers:
        return note("No customer has enough history to show.") + missing
    profile = model.profile_
    names = [info["name"] for info in profile.trait_info_]
    segments = profile.customer_profiles_.select(pl.col("customer_id").cast(pl.String),
                                                 "segment")
    parts = [note("The most typical customer of each of the largest segments: profiled from "
                  "their own events (not cold start) and, where the data has categories, "
                  "leaning most on the segment's leading category."), missing]
    for cid in customers:
        row = profile.customer_row(cid)
        shares = profile.customer_traits_[row]
        order = shares.argsort()[::-1][:6]
        segment = int(segments["segment"][row])
        steps = content.journey(log.events, cid) if log is not None else None
        if steps is None or not steps.height:  # not in this event file: the model's steps
            steps = content.dataset_journey(model.dataset_, cid)
        if products is not None and "category" in products.columns and \
                "category" not in steps.columns:
            steps = steps.join(products.select(pl.col("product_id").cast(pl.String),
                                               "category"), on="product_id", how="left")
        recs = recommend_customer(model, cid, 5)
        similar = profile.similar(cid, 5)
        parts.append(
            f'<article class="customer"><h3>customer {esc(cid)} · '
            f'{esc(labels.get(segment, segment))}</h3>'
            + grid(
                figure(charts.bars([names[j] for j in order],
                                   [round(float(shares[j]), 4) for j in order],
                                   "Profile (largest traits)", "share",
                                   [charts.colour(int(j)) for j in order], horizontal=True),
                       table(["trait", "share"], [(names[j], f"{shares[j]:.1%}")
                                                  for j in order]), height=260),
                figure(charts.timeline(steps), table(
                    steps.columns, steps.tail(30).iter_rows(), caption="last 30 events"),
                    height=260))
            + grid(
                block("Look-alike customers", table(
                    ["customer", "similarity", "why"],
                    [(c, f"{s:.2f}", r) for c, s, r in similar.iter_rows()])),
                block("Recommendations", table(
                    ["#", "product", "why"],
                    [(r["rank"], r["product_id"], r["reason"]) for r in recs])))
            + "</article>")
    return "".join(parts)


def models_section(leaderboards: Sequence[Leaderboard],
                   sequential: SequentialRecommender[Any, Any] | None,
                   customers: Sequence[str]) -> str:
    parts = []
    if not leaderboards:
        parts.append(note("No leaderboard was given (--leaderboard FILE.json, written by "
                          "funnelprint evaluate ... --json)."))
    for source, record in leaderboards:
        parts.append(leaderboard_block(source, record))
    if sequential is None:
        parts.append(note("No sequential model was given (--sequential DIR): no attention "
                          "heatmaps."))
    else:
        parts.append(attention_blocks(sequential, customers))
    return "".join(parts)


def leaderboard_block(source: str, record: dict[str, Any]) -> str:
    ds = record.get("dataset", {})
    ties = str(record.get("ties", "pessimistic"))
    protocol = str(record.get("protocol", "?"))
    split = record.get("split", {})
    stated = (f"<b>{esc(ds.get('name', 'dataset'))}</b> · protocol <b>{esc(protocol)}</b> "
              f"({esc(_protocol_words(protocol))}) · part {esc(record.get('part', 'test'))} · "
              f"ties <b>{esc(ties)}</b> ({esc(TIE_RULES.get(ties, ''))}) · "
              f"{'history items kept' if record.get('keep_seen') else 'history items excluded'}"
              f" · {split.get('evaluated', 0):,} customers evaluated"
              + (f" · {split['catalogue_items']:,} products in the training catalogue, "
                 f"{split.get('test_targets_outside_catalogue', 0):,} held-out products "
                 "outside it not scored" if "catalogue_items" in split else ""))
    metrics = [m for m in HEADLINE if any(m in r for r in record["models"].values())]
    rows = [(key, *[_num(result.get(m)) for m in metrics],
             _num(result.get("fit_seconds")))
            for key, result in record["models"].items() if "error" not in result]
    rows += [(key, result["error"], *[""] * len(metrics))
             for key, result in record["models"].items() if "error" in result]
    chart = charts.leaderboard([(source, record)], [m for m in metrics if "Novelty" not in m])
    notes = "".join(note(f"{key}: {result['note']}") for key, result in record["models"].items()
                    if "note" in result)
    return block(f"Leaderboard: {source}", f'<p class="meta">{stated}</p>'
                 + table(["model", *metrics, "fit s"], rows) + notes + figure(chart))


def attention_blocks(model: SequentialRecommender[Any, Any], customers: Sequence[str],
                     k: int = 5, steps: int = 20) -> str:
    known = model.dataset_.customer_index()
    shown = [c for c in customers if c in known]
    if not shown:
        return note(f"The sequential model ({esc(model.key)}) knows none of the example "
                    "customers: no heatmaps.")
    figures = []
    for cid in shown[:2]:
        request, ranked = answer_known(model, cid, k)
        history, items = request.history, ranked.items[0][ranked.items[0] >= 0]
        if not items.size or not history.items.size:
            continue
        weights = model.explain(history, items)
        labels = model.step_labels(history)
        width = min(steps, len(labels), weights.shape[1])
        names = [str(model.dataset_.item_ids[i]) for i in items]
        figures.append(figure(charts.heatmap(
            weights[:, weights.shape[1] - width:], labels[len(labels) - width:], names,
            f"{model.key}: what customer {cid}'s recommendations drew on (last {width} "
            "steps)"), height=360))
    return block(f"Attention of the sequential model ({model.key})",
                 note("Rows: the model's top recommendations; columns: the last history "
                      "steps; each row's weights sum to 1.") + "".join(figures))


# ------------------------------------------------------------------ building blocks


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def block(title: str, body: str) -> str:
    return f'<div class="block"><h3>{esc(title)}</h3>{body}</div>'


def grid(*items: str) -> str:
    return f'<div class="grid">{"".join(f"<div>{i}</div>" for i in items)}</div>'


def kpis(facts: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f'<div class="kpi"><span>{esc(k)}</span><b>'
                    f'{esc(f"{v:,}" if isinstance(v, int) else v)}</b></div>' for k, v in facts)
    return f'<div class="kpis">{cells}</div>'


def table(headers: Sequence[str], rows: Any, caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(fig: Any, numbers: str = "", height: int = 320) -> str:
    """A chart, and its numbers as a table behind a 'numbers' toggle."""
    shown = f"<details><summary>numbers</summary>{numbers}</details>" if numbers else ""
    return f'<figure class="chart">{charts.to_div(fig, height)}{shown}</figure>'


def segment_labels(summary: Sequence[dict[str, Any]]) -> dict[int, str]:
    """'segment 3 · pets.dog 61% + regular 20%' per segment: its number and its two leading
    traits with their shares (segments that lead with the same traits differ in them)."""
    return {int(s["segment"]): f"segment {s['segment']} · " + " + ".join(
        f"{name} {share:.0%}" for name, share in s["traits"].items()) for s in summary}


def page(sections: Sequence[tuple[str, str, str]], model: TraitsRecommender) -> str:
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{esc(title)}</h2>{html_}</section>'
                   for key, title, html_ in sections)
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>funnelprint report</title><style>{STYLE}</style>"
        f'<script type="application/octet-stream" id="plotly-js">{charts.plotly_bundle()}'
        f"</script><script>const CONFIG = {json.dumps(charts.CONFIG)};{charts.LOADER}</script>"
        '</head><body><p id="no-charts" class="note" hidden>This browser cannot unpack the '
        "charts (it needs DecompressionStream, in browsers since 2023); the numbers under "
        "each chart are all there.</p>"
        f'<header><h1>Customer traits report</h1><p class="meta">{esc(model.key)} model · '
        f"{model.profile_.n_traits_} traits · {len(model.profile_.customer_ids_):,} customers"
        f" ({model.profile_.cold_start_share():.0%} cold start)"
        f" · made {made} by funnelprint</p><nav>{nav}</nav></header>"
        f"<main>{body}</main></body></html>"
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, int | float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def _pct(value: Any) -> str:
    return "—" if value is None or not math.isfinite(float(value)) else f"{value:.1%}"


def _day(value: str | None) -> str:
    return value[:10] if value else "?"


SPLIT_WORDS = {
    "loo": "each customer's last step held out, the one before for validation",
    "last-new": "each customer's last product new to them held out, the new product before "
                "it for validation; models fitted on the steps before",
    "temporal": "the last tenth of the log's time held out",
    "user": "a tenth of the customers held out whole",
    "purchase": "each customer's last purchase held out",
}


def _protocol_words(protocol: str) -> str:
    split, _, ranking = protocol.rpartition("-")
    ranked = ("the whole training catalogue ranked" if ranking == "full"
              else f"the target ranked among {ranking.removeprefix('sampled')} sampled items")
    return f"{SPLIT_WORDS.get(split, split + ' split')}; {ranked}"


STYLE = """
:root{--ink:#1d2327;--muted:#5a6570;--line:#dde2e6;--bg:#f6f7f9}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',
Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:14px 28px;position:sticky;
top:0;z-index:10}h1{margin:0;font-size:22px}nav a{margin-right:18px;color:#0072B2;
font-weight:600;text-decoration:none}main{padding:10px 28px 40px;max-width:1400px}
section{margin-top:26px}h2{font-size:20px;border-bottom:2px solid #0072B2;padding-bottom:4px}
h3{font-size:16px;margin:6px 0}.meta{color:var(--muted);margin:2px 0 8px}
.note{color:var(--muted);font-style:italic}.kpis{display:flex;flex-wrap:wrap;gap:10px}
.kpi{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 14px}
.kpi span{display:block;color:var(--muted);font-size:12px}.kpi b{font-size:17px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.card,.customer,.block,.chart{background:#fff;border:1px solid var(--line);border-radius:6px;
padding:10px 12px;margin:10px 0}.chart{margin:10px 0;padding:6px}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;
background:#0072B2}.badge.behaviour{background:#D55E00}.badge.mixed{background:#6a3d9a}
.label{display:inline-block;min-width:76px;color:var(--muted);font-size:12px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0;width:100%}
th,td{border-bottom:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f3f5}caption{text-align:left;color:var(--muted)}
details summary{cursor:pointer;color:var(--muted);font-size:12px}
.card p{margin:4px 0}svg.mix text{fill:var(--ink)}
"""
