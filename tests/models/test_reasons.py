"""Reasons name the true causes of a product's score: checked against the score's own
decomposition (learned weights x features) on sampled customers."""

from __future__ import annotations

import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from funnelprint.data.dataset import Dataset
from funnelprint.data.pipeline import prepare_events
from funnelprint.data.sequences import session_ids
from funnelprint.data.simulate import SimulationConfig, simulate
from funnelprint.models import affinity, reasons, signals
from funnelprint.models.serving import Request, answer
from funnelprint.models.traits import TraitsRecommender


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    sim = simulate(SimulationConfig(customers=400, products=150, seed=11))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("shop"))["events"])
    dataset = Dataset.from_events(log, collapse_repeats=False, products=sim.products)
    return TraitsRecommender(traits=6, n_init=1, anchors=16, epochs=3).fit(dataset)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """A shop whose categories are bare ids (as Taobao's and REES46's uncoded ones are),
    and every customer's recommendations."""
    sim = simulate(SimulationConfig(customers=300, products=120, seed=5))
    log = prepare_events(sim.write(tmp_path_factory.mktemp("ids"))["events"])
    names = sorted(set(sim.products["category"].to_list()))
    products = sim.products.with_columns(pl.col("category").replace_strict(
        {n: str(2053013563651392361 + 7 * i) for i, n in enumerate(names)}))
    dataset = Dataset.from_events(log, collapse_repeats=False, products=products)
    model = TraitsRecommender(traits=4, n_init=1, anchors=16, epochs=3).fit(dataset)
    return model, answer(model, Request.of_known(model, dataset.customer_ids[:60]), k=10)


@pytest.fixture(scope="module")
def sampled(model):
    rng = np.random.default_rng(0)
    ids = rng.choice(model.dataset_.customer_ids, 40, replace=False)
    request = Request.of_known(model, ids)
    results = {e: answer(model, request, k=10, exclude=e) for e in ("seen", "none")}
    return request, results


def decomposition(model, request, items):
    """Centred contributions computed here from the features and the weights."""
    c = model.config
    stack = affinity.features(request.history, request.prepared.traits, model.items_,
                              model.dataset_.action_names, c.last_n, c.decay)
    centred = stack - stack.mean(axis=2, keepdims=True)
    picked = np.take_along_axis(centred, np.maximum(items, 0)[None], axis=2)
    return picked.transpose(1, 2, 0) * model.weights_, stack


@pytest.mark.parametrize("exclude", ["seen", "none"])
def test_the_first_factor_is_the_largest_contribution(model, sampled, exclude):
    request, results = sampled
    result = results[exclude]
    parts, stack = decomposition(model, request, result.items)
    score = np.tensordot(model.weights_, stack, axes=1)
    listed = result.items >= 0
    # The contributions are the score, less the row's mean score.
    rebuilt = parts.sum(axis=2) + score.mean(axis=1, keepdims=True)
    exact = np.take_along_axis(score, np.maximum(result.items, 0), axis=1)
    assert np.allclose(rebuilt[listed], exact[listed], atol=1e-3)
    checked = 0
    for row, row_reasons in enumerate(result.reasons):
        for col, reason in enumerate(row_reasons):
            largest = affinity.FEATURES[int(parts[row, col].argmax())]
            assert reason["evidence"][0]["step"] == largest, reason
            weights = [e["weight"] for e in reason["evidence"]]
            assert weights == sorted(weights, reverse=True) and weights[0] > 0
            checked += 1
    assert checked == listed.sum() > 300


def test_a_cited_trait_leads_the_profile_and_the_item_loads_on_it(model, sampled):
    request, results = sampled
    names = [info["name"] for info in model.profile_.trait_info_]
    shares = model.catalogue_.trait_shares
    cited = 0
    for result in results.values():
        for row, row_reasons in enumerate(result.reasons):
            mix = request.prepared.traits[row]
            leading = set(np.argsort(-mix)[:reasons.LEADING][
                mix[np.argsort(-mix)[:reasons.LEADING]] >= reasons.LEADING_SHARE].tolist())
            for col, reason in enumerate(row_reasons):
                found = re.search(r"fits trait '(.+?)' \((\d+)%", reason["text"])
                if not found:
                    continue
                j = names.index(found.group(1))
                item = result.items[row, col]
                assert j in leading and shares[item, j] >= reasons.LOADS
                assert int(found.group(2)) == round(100 * mix[j])
                cited += 1
    assert cited > 0


def test_popular_is_said_only_of_the_popular_head(model, sampled):
    _, results = sampled
    counts = model.dataset_.item_counts()
    order = np.argsort(-counts, kind="stable")
    head_size = int(np.searchsorted(np.cumsum(counts[order]), 0.25 * counts.sum()) + 1)
    head = set(order[:head_size].tolist())
    for result in results.values():
        for row, row_reasons in enumerate(result.reasons):
            for col, reason in enumerate(row_reasons):
                if "most popular" in reason["text"]:
                    assert int(result.items[row, col]) in head


def test_the_popular_head_holds_a_quarter_of_the_interactions():
    counts = np.array([50, 30, 10, 5, 3, 2, 0])
    assert np.flatnonzero(reasons.popular_head(counts)).tolist() == [0]
    assert np.flatnonzero(reasons.popular_head(counts, 0.6)).tolist() == [0, 1]
    assert not reasons.popular_head(np.zeros(3)).any()


#: Link phrases: the kind of count, the history product, the count ("often": at least
#: reasons.OFTEN, stated in brackets; otherwise the count alone).
LINK_PHRASES = (
    ("transition", r"often the next product after (\S+) \(([\d,]+) times\)"),
    ("transition", r"the next product after (\S+) (once|twice|[\d,]+ times)"),
    ("visits", r"often in the same visits as (\S+) \(([\d,]+) visits\)"),
    ("visits", r"in ([\d,]+) visits? with (\S+)"),
    ("customers", r"([\d,]+) customers? who looked at (\S+) looked at it too"),
    ("customers", r"similar to recent (\S+) \(([\d,]+) customers? looked at both\)"),
)


def log_counts(dataset):
    """Transitions, shared visits and shared customers of every pair of products in the
    training sequences, counted plainly."""
    seq = dataset.sequences
    rows = np.repeat(np.arange(seq.n_rows), seq.lengths)
    ids = dataset.item_ids
    moves = [(ids[a], ids[b]) for a, b, same in zip(seq.items[:-1], seq.items[1:],
                                                    rows[1:] == rows[:-1], strict=True)
             if same and a != b]
    visits = session_ids(seq)
    groups = {"visits": {}, "customers": {}}
    for item, visit, row in zip(seq.items, visits, rows, strict=True):
        groups["visits"].setdefault(ids[item], set()).add(visit)
        groups["customers"].setdefault(ids[item], set()).add(row)
    return Counter(moves), groups


def link_claims(text):
    """(kind, source product, stated count, said "often") of every link phrase of a reason;
    a phrase that names a product without a count fails."""
    out = []
    for phrase in text.split("; "):
        for kind, pattern in LINK_PHRASES:
            if found := re.fullmatch(pattern, phrase):
                a, b = found.groups()
                source, count = (b, a) if pattern.startswith(r"in (") or \
                    pattern.startswith(r"([") else (a, b)
                n = {"once": 1, "twice": 2}.get(count) or int(count.split()[0].replace(",", ""))
                out.append((kind, source, n, phrase.startswith("often")))
                break
        else:
            assert not re.search(r"(after|as|with|recent|at) \S*\d", phrase), phrase
    return out


def test_a_link_reason_states_its_count_in_the_training_log(model, sampled):
    request, results = sampled
    ids = model.dataset_.item_ids
    transitions, groups = log_counts(model.dataset_)
    seen = Counter()
    for result in results.values():
        for row, row_reasons in enumerate(result.reasons):
            recent = set(ids[request.history.last(model.config.last_n).row(row)].tolist())
            history = set(ids[request.history.row(row)].tolist())
            for col, reason in enumerate(row_reasons):
                item = ids[result.items[row, col]]
                for kind, source, n, often in link_claims(reason["text"]):
                    if kind == "transition":
                        assert source == ids[request.history.row(row)[-1]]
                        true = transitions[(source, item)]
                    else:
                        assert source in (history if "looked at it" in reason["text"]
                                          else recent)
                        true = len(groups[kind][source] & groups[kind].get(item, set()))
                    assert n == true, (reason["text"], true)
                    assert not often or n >= reasons.OFTEN
                    seen[kind] += 1
    assert seen["visits"] > 0 and seen["customers"] > 0 and seen["transition"] > 0, seen


def test_a_category_is_said_once_and_a_bare_id_as_a_category(numbered):
    model, results = numbered
    categories = dict(zip(model.dataset_.item_ids, model.dataset_.item_categories,
                          strict=True))
    named = both = 0
    for row_reasons, row_items in zip(results.reasons, results.items, strict=True):
        for reason, item in zip(row_reasons, row_items, strict=True):
            said = re.findall(r"(?:^|; )in ([^,;]+), like", reason["text"])
            assert len(said) <= 1, reason["text"]
            for label in said:
                assert label == f"category {categories[model.dataset_.item_ids[item]]}"
                named += 1
            steps = [e["step"] for e in reason["evidence"]]
            if {"category", "recent_category"} <= set(steps):
                assert len(said) == 1
                both += 1
    assert named > 0 and both > 0


def test_came_back_is_said_of_returns_in_another_visit_only(model, sampled):
    request, results = sampled
    offsets, visits_of = request.history.offsets, request.history.sessions
    assert visits_of is not None
    said = 0
    for row, row_reasons in enumerate(results["none"].reasons):
        history = request.history.row(row).tolist()
        sessions = {row: visits_of[offsets[row]:offsets[row + 1]]}
        for col, reason in enumerate(row_reasons):
            item = int(results["none"].items[row, col])
            found = re.search(r"came back to it in (\d+) visits \((\d+) steps? on it\)",
                              reason["text"])
            if found:
                visits = len(set(sessions[row][np.array(history) == item].tolist()))
                assert int(found.group(1)) == visits >= 2
                assert int(found.group(2)) == history.count(item)
                said += 1
    assert said > 0


def test_category_labels():
    assert reasons.category_label("computers.notebook") == "computers.notebook"
    assert reasons.category_label("2053013563651392361") == "category 2053013563651392361"
    assert reasons.category_label("8") == "category 8"


def test_shared_counts_each_distinct_pair_once():
    by_group = signals.incidence(np.array([0, 0, 1, 1, 2, 2, 2]),
                                 np.array([0, 1, 0, 1, 1, 2, 2]), 3)
    assert signals.shared(by_group, np.array([0, 1, 0, 1]), np.array([1, 0, 2, 2])
                          ).tolist() == [2, 2, 0, 1]


@pytest.mark.parametrize(("feature", "position", "usual", "alike"), [
    ("price", 0.30, 0.20, True), ("price", 0.90, 0.20, False),
    ("price", 0.55, 0.30, True),  # 25 points apart, whatever the float difference says
    ("price", 0.375, 0.125, False),  # printed 38% and 12%: 26 points
    ("carted_price", 0.90, 0.60, True), ("carted_price", 0.40, 0.70, False),
    ("carted_price", 0.502, 0.80, False)])  # printed 50%: on neither side
def test_prices_alike_is_judged_on_the_printed_points(feature, position, usual, alike):
    assert reasons._prices_alike(feature, position, usual) == alike


@pytest.mark.parametrize("high", [True, False])
@pytest.mark.parametrize(("position", "usual"), [(0.30, 0.20), (0.90, 0.20)])
def test_a_price_verdict_is_said_only_where_the_printed_figures_bear_it(high, position, usual):
    """A price feature can stand above its mean with the prices far apart (unpriced
    products pull the mean down), or below it with them alike: then the words state the
    figures instead of "like" or "unlike"."""
    facts = SimpleNamespace(item_positions=np.array([position]),
                            usual_price={"price": [usual]})
    text = reasons._factor("price", high, 0, 0, 0, facts)  # type: ignore[arg-type]
    alike = abs(position - usual) <= 0.25
    verdict = "priced like" if alike else "priced unlike"
    assert text.startswith(verdict) == (high == alike), text
    assert f"{position:.0%}" in text and f"{usual:.0%}" in text


def test_every_price_verdict_holds_its_own_figures(model, sampled):
    _, results = sampled
    said = 0
    for result in results.values():
        for row_reasons in result.reasons:
            for reason in row_reasons:
                for found in re.finditer(r"priced (like|unlike) the customer's (products|carts) "
                                         r"\(percentile (\d+)% of its category, theirs (\d+)%\)",
                                         reason["text"]):
                    a, b = int(found[3]), int(found[4])
                    like = abs(a - b) <= 25 if found[2] == "products" else (a - 50) * (b - 50) > 0
                    assert like == (found[1] == "like"), reason["text"]
                    said += 1
    assert said > 0
