"""The report's figures: Plotly charts (rendered by the page's one inlined copy of
plotly.js) and small static SVGs where hovering adds nothing.

Colours are the Okabe-Ito palette, then Paul Tol's muted one, both readable with the common
colour-vision deficiencies; segments also differ by marker shape, so no chart depends on
colour alone. Every chart shows its numbers on hover, and the page shows them in a table too.
"""

from __future__ import annotations

import base64
import gzip
import html
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

#: Okabe & Ito (2008), black left for the population, then Tol's muted scheme.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#332288",
           "#117733", "#882255", "#44AA99", "#AA4499", "#999933", "#DDCC77", "#88CCEE")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "triangle-down",
           "pentagon", "star", "hexagon")
POPULATION = "#222222"
ACTION_COLOURS = {"view": "#56B4E9", "add_to_cart": "#E69F00", "cart": "#E69F00",
                  "remove_from_cart": "#D55E00", "remove": "#D55E00", "purchase": "#009E73",
                  "buy": "#009E73"}
ACTION_ORDER = ("view", "add_to_cart", "remove_from_cart", "purchase")
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
_CHART_IDS = itertools.count()
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def to_div(fig: go.Figure, height: int = 320) -> str:
    """The figure as an empty ``<div>`` and a script that hands its JSON to the page's
    ``drawChart`` (see :data:`LOADER`)."""
    own = {k: v for k, v in fig.layout.margin.to_plotly_json().items() if v is not None}
    fig.update_layout(template="plotly_white", height=height, font={"family": FONT, "size": 12},
                      margin={"l": 60, "r": 20, "t": 40, "b": 50} | own, title_font_size=14,
                      hoverlabel={"font_size": 12})
    div = f"chart-{next(_CHART_IDS)}"
    # plotly's JSON writes "<" as \u003c, so no string in it can close the script
    spec = pio.to_json(fig, validate=False)
    return (f'<div id="{div}" class="plot" style="height:{height}px"></div>'
            f'<script>drawChart("{div}", {spec});</script>')


def plotly_bundle() -> str:
    """plotly.js, gzip-compressed and base64-encoded: a third of its size. The page
    decompresses it with the browser's own ``DecompressionStream``."""
    from plotly.offline import get_plotlyjs

    packed = gzip.compress(get_plotlyjs().encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


#: Unpacks plotly.js once, then draws every chart queued by ``drawChart``. A browser
#: without DecompressionStream (before 2023) shows a notice; the tables still hold the numbers.
LOADER = """
const plotlyReady = (async () => {
  if (typeof DecompressionStream === 'undefined') {
    document.addEventListener('DOMContentLoaded', () => {
      document.getElementById('no-charts').hidden = false;
    });
    return false;
  }
  const packed = document.getElementById('plotly-js').textContent.trim();
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  (0, eval)(await new Response(stream).text());
  return true;
})();
function drawChart(id, spec) {
  plotlyReady.then(ok => ok && Plotly.newPlot(id, spec.data, spec.layout, CONFIG));
}
"""


def bars(labels: Sequence[str], values: Sequence[float], title: str, value_name: str,
         colours: Sequence[str] | None = None, horizontal: bool = False) -> go.Figure:
    """One bar per label, the value on hover and printed on the bar. The value axis runs
    from zero to past the largest bar, so no bar or label runs off it."""
    text = [f"{v:,.0f}" if float(v).is_integer() else f"{v:.3g}" for v in values]
    orientation = "h" if horizontal else "v"
    if horizontal:  # long names on a few lines, so they leave the bars room in a narrow chart
        labels = [wrap_label(label) for label in labels]
    x, y = (values, labels) if horizontal else (labels, values)
    fig = go.Figure(go.Bar(
        x=list(x), y=list(y), orientation=orientation, text=text, textposition="auto",
        cliponaxis=False, marker_color=list(colours) if colours else PALETTE[0],
        name=value_name,
        hovertemplate=f"%{{{'y' if horizontal else 'x'}}}<br>{value_name}: "
                      f"%{{{'x' if horizontal else 'y'}:,}}<extra></extra>"))
    fig.update_layout(title=title)
    top = max((float(v) for v in values if math.isfinite(float(v))), default=0.0)
    span = [0.0, top * 1.2 if top > 0 else 1.0]
    if horizontal:
        fig.update_yaxes(autorange="reversed", automargin=True, type="category")
        fig.update_xaxes(range=span, autorange=False)
    else:
        fig.update_yaxes(range=span, autorange=False)
        fig.update_xaxes(type="category", automargin=True)
    return fig


def wrap_label(text: str, width: int = 26) -> str:
    """``text`` broken into lines of about ``width`` characters (an axis label's line
    breaks), at spaces, a name part's `` ·`` kept at the end of its line."""
    parts = text.split(" · ")
    words = [word + (" ·" if i < len(parts) - 1 and k == len(part.split(" ")) - 1 else "")
             for i, part in enumerate(parts) for k, word in enumerate(part.split(" "))]
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


def histogram(hist: pl.DataFrame, title: str, unit: str) -> go.Figure:
    """Pre-binned counts (``low``, ``high``, ``count``) as adjacent bars."""
    labels = [f"{lo}" if lo == hi else f"{lo}–{hi}"
              for lo, hi in zip(hist["low"], hist["high"], strict=True)]
    fig = go.Figure(go.Bar(
        x=labels, y=hist["count"].to_list(), marker_color=PALETTE[0],
        hovertemplate=f"%{{x}} {unit}<br>%{{y:,}}<extra></extra>"))
    fig.update_layout(title=title, bargap=0.05, xaxis_title=unit, yaxis_title="count",
                      xaxis_type="category")
    return fig


def per_day(frame: pl.DataFrame) -> go.Figure:
    """Events per day, stacked by action."""
    fig = go.Figure()
    actions = sorted(frame["action"].unique().to_list(), key=_action_rank)
    for action in actions:
        rows = frame.filter(pl.col("action") == action)
        fig.add_bar(x=[str(d) for d in rows["day"]], y=rows["len"].to_list(), name=action,
                    marker_color=ACTION_COLOURS.get(action, "#999999"),
                    hovertemplate=f"%{{x}}<br>{action}: %{{y:,}}<extra></extra>")
    fig.update_layout(title="Events per day", barmode="stack", yaxis_title="events",
                      legend_orientation="h", legend_y=-0.2)
    return fig


def reach(table: pl.DataFrame) -> go.Figure:
    """Customers whose largest trait each trait is, and customers leaning on it."""
    fig = go.Figure()
    names = [wrap_label(name, 40) for name in table["name"].to_list()]
    for column, label, shade in (("leading", "largest trait", PALETTE[0]),
                                 ("leaning", "≥ 25% of the profile", PALETTE[1])):
        fig.add_bar(y=names, x=table[column].to_list(), name=label,
                    orientation="h", marker_color=shade,
                    hovertemplate=f"%{{y}}<br>{label}: %{{x:,}} customers<extra></extra>")
    fig.update_layout(title="Customers per trait", barmode="group", xaxis_title="customers",
                      legend_orientation="h", legend_y=-0.15)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def segment_map(points: pl.DataFrame, labels: dict[int, str]) -> go.Figure:
    """Customers on the profile map, one trace (colour and shape) per segment."""
    fig = go.Figure()
    for s in sorted(labels):
        rows = points.filter(pl.col("segment") == s)
        fig.add_scatter(
            x=rows["x"].to_list(), y=rows["y"].to_list(), mode="markers", name=labels[s],
            marker={"color": colour(s), "symbol": SYMBOLS[s % len(SYMBOLS)], "size": 6,
                    "opacity": 0.75, "line": {"width": 0.3, "color": "#333"}},
            customdata=np.column_stack([rows["customer_id"].to_numpy(),
                                        rows["leading"].to_numpy()]).tolist(),
            hovertemplate="customer %{customdata[0]}<br>" + html.escape(labels[s]) +
                          "<br>%{customdata[1]}<extra></extra>")
    fig.update_layout(title="Customers by their trait profile (principal components of the "
                            "square-root trait shares)",
                      xaxis_title="component 1", yaxis_title="component 2",
                      # below the map: long segment names beside it would squeeze the map
                      legend={"itemsizing": "constant", "orientation": "h", "y": -0.18,
                              "yanchor": "top", "x": 0, "xanchor": "left"})
    fig.update_xaxes(automargin=True)
    return fig


def funnels(table: pl.DataFrame, labels: dict[int, str], rates: Sequence[tuple[str, str]]
            ) -> go.Figure:
    """One panel per funnel rate: a bar per segment, everyone's bar in black on top and its
    value as a dashed line across the panel, so each segment reads against the population."""
    from plotly.subplots import make_subplots

    rows = sorted(table.iter_rows(named=True), key=lambda r: int(r["segment"]))
    # ``labels`` are short (see report.content.short_segment_labels): long ones would
    # squeeze the panels into overlapping titles; in full on the map and in the table.
    names = ["everyone" if r["segment"] < 0 else labels.get(
        int(r["segment"]), f"segment {r['segment']}") for r in rows]
    colours = [POPULATION if r["segment"] < 0 else colour(int(r["segment"])) for r in rows]
    fig = make_subplots(rows=1, cols=len(rates), shared_yaxes=True, horizontal_spacing=0.015,
                        subplot_titles=[label for _, label in rates])
    for col, (column, label) in enumerate(rates, start=1):
        values = [_round(r[column]) for r in rows]
        fig.add_bar(y=names, x=values, orientation="h", marker_color=colours, row=1, col=col,
                    showlegend=False, text=[_pct_text(v) for v in values],
                    textposition="outside", cliponaxis=False, textfont_size=10,
                    hovertemplate=f"%{{y}}<br>{html.escape(label)}: %{{x:.1%}}<extra></extra>")
        everyone = next((v for r, v in zip(rows, values, strict=True) if r["segment"] < 0),
                        None)
        if everyone is not None:
            fig.add_vline(x=everyone, line_dash="dash", line_color=POPULATION, line_width=1,
                          row=1, col=col)
        top = max((v for v in values if v is not None), default=1.0)
        # Room past the longest bar for its printed value ("100%" included): the values
        # are printed beside the bars, and ticks of adjacent panels would collide.
        fig.update_xaxes(range=[0, (top or 1.0) * 1.45], showticklabels=False,
                         row=1, col=col)
    fig.update_yaxes(autorange="reversed", automargin=True, type="category")
    fig.update_layout(title="Funnel per segment (dashed line: everyone)", bargap=0.25,
                      margin={"r": 36})
    fig.update_annotations(font_size=12)
    return fig


def _pct_text(value: float | None) -> str:
    """A rate as a label; none where there is nothing to rate (no carts: no cart rate)."""
    return "" if value is None or not math.isfinite(value) else f"{value:.0%}"


def timeline(steps: pl.DataFrame) -> go.Figure:
    """One customer's journey: each event at its time, on the row of its action."""
    fig = go.Figure()
    extra = [c for c in ("session", "category") if c in steps.columns]
    for action in sorted(steps["action"].unique().to_list(), key=_action_rank):
        rows = steps.filter(pl.col("action") == action)
        custom = np.column_stack([rows["product_id"].cast(pl.String).to_numpy(),
                                  *[rows[c].cast(pl.String).to_numpy() for c in extra]])
        hover = "%{x}<br>" + action + " %{customdata[0]}" + "".join(
            f"<br>{c} %{{customdata[{i + 1}]}}" for i, c in enumerate(extra)) + "<extra></extra>"
        fig.add_scatter(x=rows["timestamp"].to_list(), y=[action] * rows.height, mode="markers",
                        name=action, customdata=custom.tolist(), hovertemplate=hover,
                        marker={"color": ACTION_COLOURS.get(action, "#999999"), "size": 9,
                                "symbol": SYMBOLS[_action_rank(action) % len(SYMBOLS)],
                                "line": {"width": 0.5, "color": "#333"}})
    fig.update_layout(title="Journey", showlegend=False)
    present = set(steps["action"].unique().to_list())
    fig.update_yaxes(categoryorder="array", automargin=True, categoryarray=[
        a for a in sorted(present, key=_action_rank, reverse=True)])
    return fig


def leaderboard(records: Sequence[tuple[str, dict[str, Any]]], metrics: Sequence[str]
                ) -> go.Figure:
    """The headline metrics of every model in every leaderboard, grouped by metric."""
    fig = go.Figure()
    i = 0
    for source, record in records:
        for key, result in record["models"].items():
            name = key if len(records) == 1 else f"{key} ({source})"
            shown = [m for m in metrics if m in result]
            fig.add_bar(x=shown, y=[_round(result[m]) for m in shown], name=name,
                        marker_color=colour(i),
                        marker_pattern_shape=("", "/", ".", "x")[i % 4],
                        hovertemplate=f"{html.escape(name)}<br>%{{x}}: %{{y:.4f}}"
                                      "<extra></extra>")
            i += 1
    fig.update_layout(title="Leaderboard", barmode="group")
    return fig


def heatmap(weights: np.ndarray, steps: Sequence[str], items: Sequence[str], title: str
            ) -> go.Figure:
    """How much each recommended item (row) drew on each history step (column)."""
    fig = go.Figure(go.Heatmap(
        z=np.round(weights, 4).tolist(), y=list(items),
        x=[f"{i + 1}. {s}" for i, s in enumerate(steps)],
        colorscale="Viridis", colorbar={"title": "weight"},
        hovertemplate="recommended %{y}<br>step %{x}<br>weight %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="history step (oldest → newest)",
                      yaxis_title="recommended")
    fig.update_xaxes(tickangle=-60, automargin=True)
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    return fig


def mix_svg(trait: dict[str, float], population: dict[str, float], width: int = 260) -> str:
    """Two stacked bars (the trait's action mix above the population's), each part titled
    with its share for hovering."""
    rows = []
    for y, (label, mix) in enumerate((("trait", trait), ("everyone", population))):
        x = 62.0
        rows.append(f'<text x="0" y="{y * 22 + 14}" font-size="11">{label}</text>')
        for key, share in mix.items():
            w = (width - 62) * float(share)
            rows.append(
                f'<rect x="{x:.1f}" y="{y * 22 + 2}" width="{w:.1f}" height="16" '
                f'fill="{ACTION_COLOURS.get(key, "#999")}"><title>{html.escape(key)} '
                f'{share:.0%}</title></rect>')
            x += w
    return (f'<svg class="mix" role="img" aria-label="action mix" width="{width}" '
            f'height="44" viewBox="0 0 {width} 44">{"".join(rows)}</svg>')


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), digits)


def _action_rank(action: str) -> int:
    aliases = {"cart": 1, "remove": 2, "buy": 3}
    if action in ACTION_ORDER:
        return ACTION_ORDER.index(action)
    return aliases.get(action, len(ACTION_ORDER))
