"""A funnel event simulator with known customer mixes, in several scenarios.

Every scenario writes ``events.csv`` (``user_id, timestamp, action, product_id``; actions
``view``, ``add_to_cart``, ``remove_from_cart``, ``purchase``), ``products.csv``
(``product_id, category, brand, price``; prices are log-normal around a base price per category
group, so every category has cheap and pricey items) and ``truth.csv`` (what generated each
customer), so later stages can measure what a profile recovers.

Scenarios (``SimulationConfig.scenario``, ``funnelprint simulate --scenario``):

``bundled``
    The original simulator, kept event for event (same seed, same files). Each customer is a
    Dirichlet mix of :data:`PERSONAS`; every session draws one persona, and a persona ties
    *what* is shopped (categories) to *how* (price sensitivity, browsing depth, cart, removal
    and purchase rates). Because the category alone tells the persona, a profile that only
    recovers categories still scores well here. ``truth.csv``: ``customer_id``,
    ``dominant_persona``, one column per persona (the realised share of sessions it drove) and
    ``prior_<persona>`` (the Dirichlet draw). ``personas.json`` lists the personas.

``independent`` (the default)
    Each customer draws a *taste* mix over :data:`TASTES` (category affinities) and,
    independently, a *behaviour* mix over :data:`BEHAVIOURS`, both Dirichlet with
    ``mix_concentration``. Every session draws its taste archetype and its behaviour archetype
    from the two mixes independently: the taste picks the session's category, the behaviour
    decides how the session moves through the funnel. How often and how regularly a customer
    visits is a property of the customer, so it follows the behaviour mix as a whole
    (geometric mean of the archetypes' visit rates, mean of their regularity).

``sparse``
    ``independent`` with little data per customer: 1-3 sessions (a quarter of the usual rate,
    capped at 3) of about 60% of the usual length.

``many``
    ``independent`` with all 12 taste archetypes (several share categories, e.g. ``dog_owner``
    and ``snacker`` both buy snacks) and all 6 behaviour archetypes, including
    ``premium_seeker``, the mirror image of ``price_seeker``.

``noisy``
    ``independent`` plus the dirt of real logs: 15% of sessions are off-mix (random taste and
    random behaviour, not counted in the truth), 2% extra customers are bots (1-3 sessions of
    150-400 views across the catalogue, under a second apart, never carting; they are not in
    ``truth.csv`` and are listed under ``bots`` in ``archetypes.json``), 3% of events are
    logged twice with the same timestamp, 5% of timestamps are off by one second, 10% of carts
    are logged in the same second as their view, and events sharing a timestamp come in random
    order (so a cart can precede the view it follows).

How each behaviour archetype shows in the events (:data:`BEHAVIOURS` has the numbers):

* ``price_seeker`` — which items of a category: views are weighted by
  ``(price / category median) ** -2.5`` and carting is less likely for pricier items, so
  carted items sit low in their category's price range; compares several items per session.
* ``impulse_buyer`` — short sessions (about 2-3 views), carts within seconds of viewing, buys
  right after carting (not at the end of the session), rarely removes: high view-to-purchase
  conversion and short view-to-cart and view-to-purchase times.
* ``window_shopper`` — long sessions (about 16 views) with long dwell times, carts almost
  nothing; visits somewhat more often than average, less regularly than ``regular``.
* ``cart_abandoner`` — carts readily, removes often (more so for expensive items) and rarely
  buys what stays in the cart: many removals and many carts never bought.
* ``regular`` — visits about twice as often as a typical customer on a steady rhythm (evenly
  spaced sessions, small jitter), short focused sessions, and 70% of views go back to one of
  two favourite products per category, which it keeps buying.
* ``premium_seeker`` (``many`` only by default) — prefers the pricier items of a category.

Apart from impulse buys, a session's purchases happen in one checkout at its end, one
purchase line per product. Every behaviour but ``premium_seeker`` removes expensive items more
often than cheap ones.
Visit rates are relative to the geometric mean of the rates in play, so ``sessions_mean``
stays the typical number of sessions. A session browses a random category instead of its
taste's with probability ``off_persona_share``.

``truth.csv`` of the mixed scenarios: ``customer_id``; ``dominant_persona``, the pair of
dominant realised archetypes as ``"<taste>+<behaviour>"``; one ``taste:<name>`` column per
taste archetype and one ``behaviour:<name>`` column per behaviour archetype, each the realised
share of the customer's in-mix sessions that archetype drove (each group sums to 1); and the
Dirichlet draws behind them as ``prior_taste:<name>`` and ``prior_behaviour:<name>``. Select
the groups with :func:`taste_columns` and :func:`behaviour_columns`. Code that treats every
column other than ``customer_id``, ``dominant_persona`` and ``prior_*`` as a mix column sees
taste and behaviour columns together. ``archetypes.json`` records the scenario, the
configuration, every archetype with its parameters, and the bot ids.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

CATEGORIES = (
    "pets.dog", "pets.cat", "electronics.phone", "electronics.audio", "home.kitchen",
    "home.decor", "beauty.skincare", "beauty.makeup", "sports.running", "sports.outdoor",
    "kids.toys", "grocery.snacks",
)
_BASE_PRICE = {
    "pets": 25.0, "electronics": 250.0, "home": 45.0, "beauty": 20.0, "sports": 60.0,
    "kids": 30.0, "grocery": 6.0,
}

#: Column prefixes of the mixed scenarios' ``truth.csv``.
TASTE_PREFIX = "taste:"
BEHAVIOUR_PREFIX = "behaviour:"


@dataclass(frozen=True)
class Persona:
    """One shopper archetype: what it buys and how it moves through the funnel."""

    name: str
    categories: dict[str, float]
    price_sensitivity: float  # weight of a product ~ price ** -price_sensitivity
    views_per_session: float
    p_cart: float  # a viewed product is added to the cart
    p_remove: float  # a carted product is removed again
    p_purchase: float  # a carted, kept product is bought


PERSONAS = (
    Persona("dog_owner", {"pets.dog": 0.8, "grocery.snacks": 0.2}, 0.5, 4, 0.30, 0.05, 0.75),
    Persona("gadget_lover", {"electronics.phone": 0.5, "electronics.audio": 0.5}, -1.0, 9,
            0.10, 0.15, 0.50),
    Persona("bargain_hunter", {"home.kitchen": 0.4, "home.decor": 0.3, "kids.toys": 0.3}, 2.5,
            12, 0.15, 0.30, 0.55),
    Persona("beauty_impulse", {"beauty.skincare": 0.5, "beauty.makeup": 0.5}, 0.0, 3, 0.55,
            0.05, 0.90),
    Persona("cart_abandoner", {"sports.running": 0.5, "sports.outdoor": 0.5}, 0.5, 6, 0.50,
            0.55, 0.08),
    Persona("cat_owner", {"pets.cat": 0.8, "home.decor": 0.2}, 0.5, 4, 0.30, 0.05, 0.75),
    Persona("home_cook", {"home.kitchen": 0.7, "grocery.snacks": 0.3}, 1.0, 5, 0.25, 0.10,
            0.65),
    Persona("parent", {"kids.toys": 0.7, "beauty.skincare": 0.3}, 1.0, 6, 0.25, 0.20, 0.50),
)


@dataclass(frozen=True)
class Taste:
    """What a customer shops: affinities over categories (they need not sum to 1)."""

    name: str
    categories: dict[str, float]


TASTES = (
    Taste("dog_owner", {"pets.dog": 0.8, "grocery.snacks": 0.2}),
    Taste("gadget_lover", {"electronics.phone": 0.5, "electronics.audio": 0.5}),
    Taste("home_cook", {"home.kitchen": 0.7, "grocery.snacks": 0.3}),
    Taste("beauty_fan", {"beauty.skincare": 0.5, "beauty.makeup": 0.5}),
    Taste("runner", {"sports.running": 0.7, "sports.outdoor": 0.3}),
    Taste("parent", {"kids.toys": 0.7, "grocery.snacks": 0.3}),
    Taste("cat_owner", {"pets.cat": 0.8, "home.decor": 0.2}),
    Taste("decorator", {"home.decor": 0.7, "home.kitchen": 0.3}),
    Taste("audiophile", {"electronics.audio": 0.8, "electronics.phone": 0.2}),
    Taste("hiker", {"sports.outdoor": 0.8, "sports.running": 0.2}),
    Taste("makeup_artist", {"beauty.makeup": 0.8, "beauty.skincare": 0.2}),
    Taste("snacker", {"grocery.snacks": 0.8, "kids.toys": 0.2}),
)


@dataclass(frozen=True)
class Behaviour:
    """How a customer moves through the funnel, whatever the category."""

    name: str
    price_sensitivity: float  # view weight ~ (price / category median) ** -price_sensitivity
    cart_price_sensitivity: float  # logit(p_cart) falls by this per unit log relative price
    views_per_session: float
    dwell_seconds: float  # mean extra seconds between two views
    cart_delay_seconds: tuple[float, float]  # view -> add_to_cart, uniform in this range
    p_cart: float  # a viewed product is added to the cart (at the category's median price)
    p_remove: float  # a carted product is removed again (at the median price)
    remove_price_sensitivity: float  # logit(p_remove) rises by this per unit log relative price
    p_purchase: float  # a carted, kept product is bought
    buy_now: bool  # bought seconds after carting, not at the end of the session
    repeat_share: float  # views that go back to one of the customer's favourites in a category
    visit_rate: float  # sessions, relative to the other behaviours in play
    regularity: float  # 0: session times at random; 1: evenly spaced


BEHAVIOURS = (
    Behaviour("price_seeker", price_sensitivity=2.5, cart_price_sensitivity=1.5,
              views_per_session=8, dwell_seconds=40, cart_delay_seconds=(10, 90), p_cart=0.12,
              p_remove=0.15, remove_price_sensitivity=1.0, p_purchase=0.7, buy_now=False,
              repeat_share=0.0, visit_rate=1.0, regularity=0.0),
    Behaviour("impulse_buyer", price_sensitivity=0.0, cart_price_sensitivity=0.0,
              views_per_session=2.5, dwell_seconds=12, cart_delay_seconds=(2, 10), p_cart=0.55,
              p_remove=0.03, remove_price_sensitivity=0.5, p_purchase=0.92, buy_now=True,
              repeat_share=0.0, visit_rate=0.8, regularity=0.0),
    Behaviour("window_shopper", price_sensitivity=0.0, cart_price_sensitivity=0.0,
              views_per_session=16, dwell_seconds=70, cart_delay_seconds=(20, 120),
              p_cart=0.03, p_remove=0.3, remove_price_sensitivity=0.5, p_purchase=0.5,
              buy_now=False, repeat_share=0.0, visit_rate=1.5, regularity=0.0),
    Behaviour("cart_abandoner", price_sensitivity=0.0, cart_price_sensitivity=0.0,
              views_per_session=6, dwell_seconds=35, cart_delay_seconds=(5, 60), p_cart=0.4,
              p_remove=0.45, remove_price_sensitivity=1.5, p_purchase=0.1, buy_now=False,
              repeat_share=0.0, visit_rate=1.0, regularity=0.0),
    Behaviour("regular", price_sensitivity=0.0, cart_price_sensitivity=0.0,
              views_per_session=4, dwell_seconds=25, cart_delay_seconds=(5, 40), p_cart=0.35,
              p_remove=0.05, remove_price_sensitivity=0.5, p_purchase=0.8, buy_now=False,
              repeat_share=0.7, visit_rate=2.5, regularity=0.85),
    Behaviour("premium_seeker", price_sensitivity=-1.5, cart_price_sensitivity=-0.5,
              views_per_session=6, dwell_seconds=45, cart_delay_seconds=(10, 90), p_cart=0.25,
              p_remove=0.1, remove_price_sensitivity=0.0, p_purchase=0.7, buy_now=False,
              repeat_share=0.0, visit_rate=1.0, regularity=0.0),
)


@dataclass(frozen=True)
class Scenario:
    """A preset: how many archetypes, how much data per customer, how much noise."""

    name: str
    description: str
    tastes: int = 6  # default number of taste archetypes (first n of TASTES)
    behaviours: int = 5  # default number of behaviour archetypes (first n of BEHAVIOURS)
    session_scale: float = 1.0  # multiplies sessions_mean
    max_sessions: int = 0  # cap on sessions per customer (0: none)
    view_scale: float = 1.0  # multiplies every behaviour's views_per_session
    off_mix_share: float = 0.0  # sessions with a random taste and behaviour, not in the truth
    bot_share: float = 0.0  # extra bot customers, as a share of customers
    duplicate_share: float = 0.0  # events logged twice
    jitter_share: float = 0.0  # timestamps moved one second either way
    same_second_share: float = 0.0  # carts logged in the same second as their view


SCENARIOS = {
    s.name: s for s in (
        Scenario("bundled", "personas tie categories to behaviour (the original simulator)",
                 tastes=0, behaviours=0),
        Scenario("independent", "taste and behaviour mixes drawn independently"),
        Scenario("sparse", "independent, 1-3 short sessions per customer", session_scale=0.25,
                 max_sessions=3, view_scale=0.6),
        Scenario("many", "independent, 12 overlapping tastes and 6 behaviours", tastes=12,
                 behaviours=6),
        Scenario("noisy", "independent plus off-mix sessions, bots, duplicated events, "
                 "one-second timestamp jitter and shuffled ties", off_mix_share=0.15,
                 bot_share=0.02, duplicate_share=0.03, jitter_share=0.05, same_second_share=0.1),
    )
}


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 2000
    products: int = 600
    personas: int | None = None  # bundled only: number of personas (default 6)
    seed: int = 0
    days: int = 60
    mix_concentration: float = 0.3  # Dirichlet alpha of a customer's mix (each mix)
    sessions_mean: float = 8.0  # mean sessions per customer (log-normal spread)
    off_persona_share: float = 0.1  # sessions that browse a random category
    zipf_exponent: float = 1.0
    start: str = "2024-01-01"
    scenario: str = "independent"
    tastes: int | None = None  # mixed scenarios: number of taste archetypes
    behaviours: int | None = None  # mixed scenarios: number of behaviour archetypes

    def __post_init__(self) -> None:
        if self.customers < 1 or self.products < len(CATEGORIES):
            raise ValueError(f"need >= 1 customer and >= {len(CATEGORIES)} products")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; choose from "
                             f"{', '.join(SCENARIOS)}")
        if self.scenario == "bundled":
            if self.tastes is not None or self.behaviours is not None:
                raise ValueError("tastes and behaviours do not apply to the bundled scenario "
                                 "(it has personas)")
            if not 1 <= self.persona_count <= len(PERSONAS):
                raise ValueError(f"personas must be between 1 and {len(PERSONAS)}")
            return
        if self.personas is not None:
            raise ValueError(f"personas apply only to the bundled scenario; the "
                             f"{self.scenario!r} scenario has tastes and behaviours")
        if not 1 <= self.taste_count <= len(TASTES):
            raise ValueError(f"tastes must be between 1 and {len(TASTES)}")
        if not 1 <= self.behaviour_count <= len(BEHAVIOURS):
            raise ValueError(f"behaviours must be between 1 and {len(BEHAVIOURS)}")

    @property
    def persona_count(self) -> int:
        return 6 if self.personas is None else self.personas

    @property
    def taste_count(self) -> int:
        return SCENARIOS[self.scenario].tastes if self.tastes is None else self.tastes

    @property
    def behaviour_count(self) -> int:
        return SCENARIOS[self.scenario].behaviours if self.behaviours is None else self.behaviours


@dataclass
class Simulation:
    events: pl.DataFrame  # user_id, timestamp, action, product_id (time-ordered)
    products: pl.DataFrame  # product_id, category, brand, price
    truth: pl.DataFrame  # customer_id, dominant_persona, mix shares, prior_<mix> shares
    personas: tuple[Persona, ...]  # bundled only
    scenario: str = "bundled"
    tastes: tuple[Taste, ...] = ()
    behaviours: tuple[Behaviour, ...] = ()
    bots: tuple[str, ...] = ()  # user ids of bot customers (not in the truth)
    config: SimulationConfig | None = field(default=None, repr=False)

    def write(self, out: str | Path) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "events": out / "events.csv",
            "products": out / "products.csv",
            "truth": out / "truth.csv",
        }
        self.events.with_columns(
            pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")
        ).write_csv(paths["events"])
        self.products.write_csv(paths["products"])
        self.truth.write_csv(paths["truth"], float_precision=4)
        if self.scenario == "bundled":
            paths["personas"] = out / "personas.json"
            paths["personas"].write_text(
                json.dumps([asdict(p) for p in self.personas], indent=2))
        else:
            paths["archetypes"] = out / "archetypes.json"
            paths["archetypes"].write_text(json.dumps(self.describe(), indent=2))
        return paths

    def describe(self) -> dict:
        """The scenario, its configuration and every archetype with its parameters."""
        scenario = SCENARIOS[self.scenario]
        return {
            "scenario": asdict(scenario),
            "config": asdict(self.config) if self.config is not None else None,
            "truth_columns": {
                "taste": taste_columns(self.truth),
                "behaviour": behaviour_columns(self.truth),
                "dominant_persona": "<dominant taste>+<dominant behaviour>",
                "prior": "prior_<column>: the Dirichlet draw behind each realised share",
            },
            "tastes": [asdict(t) for t in self.tastes],
            "behaviours": [asdict(b) for b in self.behaviours],
            "personas": [asdict(p) for p in self.personas],
            "bots": list(self.bots),
        }


def taste_columns(truth: pl.DataFrame) -> list[str]:
    """The realised taste-mix columns of a mixed scenario's truth (``taste:<name>``)."""
    return [c for c in truth.columns if c.startswith(TASTE_PREFIX)]


def behaviour_columns(truth: pl.DataFrame) -> list[str]:
    """The realised behaviour-mix columns of a mixed scenario's truth
    (``behaviour:<name>``)."""
    return [c for c in truth.columns if c.startswith(BEHAVIOUR_PREFIX)]


def simulate(config: SimulationConfig | None = None) -> Simulation:
    """Draw a catalogue, customers with their mixes, and their funnel events."""
    config = config or SimulationConfig()
    if config.scenario == "bundled":
        return _simulate_bundled(config)
    return _simulate_mixed(config, SCENARIOS[config.scenario])


def _simulate_bundled(config: SimulationConfig) -> Simulation:
    rng = np.random.default_rng(config.seed)
    personas = PERSONAS[: config.persona_count]
    catalogue = _catalogue(config, rng)
    mixes = rng.dirichlet(np.full(len(personas), config.mix_concentration), config.customers)
    sessions = _sessions(config, personas, mixes, rng)
    events = _events(config, personas, catalogue, sessions, rng)
    names = [p.name for p in personas]
    # The mix that generated what each customer did: the share of their sessions each persona
    # drove (the Dirichlet prior behind it is kept as prior_<persona>).
    realised = np.zeros_like(mixes)
    np.add.at(realised, (sessions["customer"], sessions["persona"]), 1.0)
    realised /= realised.sum(axis=1, keepdims=True)
    truth = pl.DataFrame(
        {
            "customer_id": _ids("u", np.arange(config.customers)),
            "dominant_persona": np.array(names)[realised.argmax(axis=1)],
            **{name: realised[:, i] for i, name in enumerate(names)},
            **{f"prior_{name}": mixes[:, i] for i, name in enumerate(names)},
        }
    )
    products = _products_frame(config, catalogue)
    return Simulation(events, products, truth, personas, config=config)


def _products_frame(config: SimulationConfig, catalogue: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "product_id": _ids("p", np.arange(config.products)),
            "category": np.array(CATEGORIES)[catalogue["category"]],
            "brand": catalogue["brand"],
            "price": np.round(catalogue["price"], 2),
        }
    )


def _ids(prefix: str, index: np.ndarray, width: int | None = None) -> pl.Series:
    if width is None:
        width = _id_width(int(index.max()) if index.size else 0)
    return pl.Series(index).cast(pl.String).str.zfill(width).str.replace(r"^", prefix)


def _id_width(largest: int) -> int:
    return max(4, len(str(largest)))


def _catalogue(config: SimulationConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = config.products
    category = np.concatenate([np.arange(len(CATEGORIES)),
                               rng.integers(0, len(CATEGORIES), n - len(CATEGORIES))])
    rng.shuffle(category)
    base = np.array([_BASE_PRICE[c.split(".")[0]] for c in CATEGORIES])
    price = base[category] * rng.lognormal(0.0, 0.6, n)
    popularity = 1.0 / (rng.permutation(n) + 1.0) ** config.zipf_exponent
    brand_no = rng.integers(0, 4, n)
    brand = np.char.add(np.char.add(np.array([c.split(".")[1] for c in CATEGORIES])[category],
                                    "_brand"), brand_no.astype(str))
    return {"category": category, "price": price, "popularity": popularity, "brand": brand}


def _sessions(
    config: SimulationConfig, personas: tuple[Persona, ...], mixes: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    activity = rng.lognormal(np.log(config.sessions_mean) - 0.5, 1.0, config.customers)
    per_customer = 1 + rng.poisson(np.maximum(activity - 1, 0))
    customer = np.repeat(np.arange(config.customers), per_customer)
    cum = mixes.cumsum(axis=1)[customer]
    persona = (cum < rng.random((customer.size, 1)) * cum[:, -1:]).sum(axis=1)
    affinity = np.array([[p.categories.get(c, 0.0) for c in CATEGORIES] for p in personas])
    affinity /= affinity.sum(axis=1, keepdims=True)
    cat_cum = affinity.cumsum(axis=1)[persona]
    category = (cat_cum < rng.random((customer.size, 1))).sum(axis=1)
    off = rng.random(customer.size) < config.off_persona_share
    category[off] = rng.integers(0, len(CATEGORIES), int(off.sum()))
    depth = np.array([p.views_per_session for p in personas])[persona]
    views = 1 + rng.poisson(np.maximum(depth - 1, 0))
    return {"customer": customer, "persona": persona, "category": np.minimum(category, 11),
            "views": views}


def _pick_products(
    personas: tuple[Persona, ...], catalogue: dict[str, np.ndarray], persona: np.ndarray,
    category: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    order = np.argsort(catalogue["category"], kind="stable")
    sorted_cat = catalogue["category"][order]
    bounds = np.searchsorted(sorted_cat, np.arange(len(CATEGORIES) + 1))
    chosen = np.empty(persona.size, dtype=np.int64)
    for index, p in enumerate(personas):  # one vectorised draw per persona
        rows = np.flatnonzero(persona == index)
        if rows.size == 0:
            continue
        weight = catalogue["popularity"][order] * catalogue["price"][order] ** -p.price_sensitivity
        cum = np.concatenate([[0.0], np.cumsum(weight)])
        lo = cum[bounds[category[rows]]]
        hi = cum[bounds[category[rows] + 1]]
        target = lo + rng.random(rows.size) * (hi - lo)
        pos = np.searchsorted(cum, target, side="right") - 1
        lo_pos, hi_pos = bounds[category[rows]], bounds[category[rows] + 1] - 1
        chosen[rows] = order[np.clip(pos, lo_pos, hi_pos)]
    return chosen


def _events(
    config: SimulationConfig, personas: tuple[Persona, ...], catalogue: dict[str, np.ndarray],
    sessions: dict[str, np.ndarray], rng: np.random.Generator,
) -> pl.DataFrame:
    session = np.repeat(np.arange(sessions["views"].size), sessions["views"])
    persona = sessions["persona"][session]
    product = _pick_products(personas, catalogue, persona, sessions["category"][session], rng)
    gaps = np.minimum(2.0 + rng.exponential(45.0, session.size), 900.0)
    first = np.r_[True, session[1:] != session[:-1]]
    gaps[first] = 0.0
    offset = _segment_cumsum(gaps, session)

    p_cart = np.array([p.p_cart for p in personas])[persona]
    p_remove = np.array([p.p_remove for p in personas])[persona]
    p_buy = np.array([p.p_purchase for p in personas])[persona]
    cart = rng.random(session.size) < p_cart
    remove = cart & (rng.random(session.size) < p_remove)
    buy = cart & ~remove & (rng.random(session.size) < p_buy)
    cart_t = offset + rng.uniform(5, 60, session.size)
    remove_t = cart_t + rng.exponential(90.0, session.size)
    duration = np.zeros(sessions["views"].size)
    np.maximum.at(duration, session, np.where(remove, remove_t, cart_t))
    checkout_t = duration[session] + rng.uniform(30, 120, session.size)
    np.maximum.at(duration, session[buy], checkout_t[buy])
    start = _session_starts(config, sessions["customer"], duration, rng)

    parts = [(session, offset, "view"), (session[cart], cart_t[cart], "add_to_cart"),
             (session[remove], remove_t[remove], "remove_from_cart"),
             (session[buy], checkout_t[buy], "purchase")]
    products = [product, product[cart], product[remove], product[buy]]
    sess = np.concatenate([p[0] for p in parts])
    seconds = start[sess] + np.concatenate([p[1] for p in parts])
    action = np.concatenate([np.full(p[0].size, p[2]) for p in parts])
    origin = np.datetime64(config.start, "s")
    frame = pl.DataFrame(
        {
            "user_id": _ids("u", sessions["customer"][sess]),
            "timestamp": (origin + np.round(seconds).astype("timedelta64[s]")).astype(
                "datetime64[us]"
            ),
            "action": action,
            "product_id": _ids("p", np.concatenate(products)),
        }
    )
    return frame.sort("timestamp", maintain_order=True)


def _segment_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(segment[1:] != segment[:-1]) + 1]
    base = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, segment.size]))
    return total - base


def _session_starts(
    config: SimulationConfig, customer: np.ndarray, duration: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Uniform start times per customer, pushed apart so sessions are > 30 minutes apart."""
    horizon = config.days * 86_400.0
    raw = rng.uniform(0, horizon, customer.size)
    order = np.lexsort((raw, customer))
    customer, raw, duration = customer[order], raw[order], duration[order]
    spacing = duration + 1860.0 + rng.exponential(3600.0, customer.size)
    before = _segment_cumsum(spacing, customer) - spacing  # spacing of earlier sessions
    shifted = raw - before
    start = np.empty_like(raw)
    start[order] = _segment_cummax(shifted, customer) + before
    return start


def _segment_cummax(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    frame = pl.DataFrame({"v": values, "s": segment})
    return frame.select(pl.col("v").cum_max().over("s")).to_series().to_numpy()


# --- the mixed scenarios: independent taste and behaviour mixes --------------------------------


def _simulate_mixed(config: SimulationConfig, scenario: Scenario) -> Simulation:
    rng = np.random.default_rng(config.seed)
    catalogue = _catalogue(config, rng)
    return _mixed_block(config, scenario, catalogue, rng)


def _mixed_block(config: SimulationConfig, scenario: Scenario, catalogue: dict[str, np.ndarray],
                 rng: np.random.Generator, first: int = 0, first_bot: int | None = None,
                 width: int | None = None) -> Simulation:
    """``config.customers`` customers of a mixed scenario, numbered from ``first``; their
    bots are numbered from ``first_bot`` (default: right after them), ids ``width`` digits
    wide (default: what the block needs)."""
    tastes = TASTES[: config.taste_count]
    behaviours = BEHAVIOURS[: config.behaviour_count]
    alpha = config.mix_concentration
    taste_mix = rng.dirichlet(np.full(len(tastes), alpha), config.customers)
    behaviour_mix = rng.dirichlet(np.full(len(behaviours), alpha), config.customers)
    sessions = _mixed_sessions(config, scenario, tastes, behaviours, taste_mix, behaviour_mix,
                               rng)
    parts = _mixed_events(config, scenario, behaviours, catalogue, sessions, rng)
    bots = round(scenario.bot_share * config.customers)
    if bots:
        parts = [np.concatenate(pair) for pair in
                 zip(parts, _bot_events(config, bots, catalogue, rng), strict=True)]
    local = np.arange(config.customers + bots)
    first_bot = first + config.customers if first_bot is None else first_bot
    numbers = np.where(local < config.customers, first + local,
                       first_bot + local - config.customers)
    user_ids = _ids("u", numbers, width)
    events = _assemble(config, scenario, user_ids, *parts, rng=rng)

    in_mix = ~sessions["off_mix"]
    customer = sessions["customer"][in_mix]
    columns: dict[str, np.ndarray] = {}
    dominant: list[np.ndarray] = []
    for prefix, archetypes, prior, drawn in (
        (TASTE_PREFIX, tastes, taste_mix, sessions["taste"][in_mix]),
        (BEHAVIOUR_PREFIX, behaviours, behaviour_mix, sessions["behaviour"][in_mix]),
    ):
        # The share of the customer's in-mix sessions each archetype drove; a customer whose
        # sessions were all off-mix keeps the prior.
        realised = np.zeros_like(prior)
        np.add.at(realised, (customer, drawn), 1.0)
        total = realised.sum(axis=1, keepdims=True)
        realised = np.where(total > 0, realised / np.maximum(total, 1.0), prior)
        names = [a.name for a in archetypes]
        dominant.append(np.array(names)[realised.argmax(axis=1)])
        columns.update({prefix + name: realised[:, i] for i, name in enumerate(names)})
        columns.update({f"prior_{prefix}{name}": prior[:, i] for i, name in enumerate(names)})
    realised_cols = [c for c in columns if not c.startswith("prior_")]
    prior_cols = [c for c in columns if c.startswith("prior_")]
    truth = pl.DataFrame(
        {
            "customer_id": user_ids[: config.customers],
            "dominant_persona": np.char.add(np.char.add(dominant[0], "+"), dominant[1]),
            **{c: columns[c] for c in realised_cols + prior_cols},
        }
    )
    return Simulation(events, _products_frame(config, catalogue), truth, (),
                      scenario=scenario.name, tastes=tastes, behaviours=behaviours,
                      bots=tuple(user_ids[config.customers:].to_list()), config=config)


def _draw(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of (unnormalised) probabilities."""
    cum = probabilities.cumsum(axis=1)
    index = (cum < rng.random((cum.shape[0], 1)) * cum[:, -1:]).sum(axis=1)
    return np.minimum(index, cum.shape[1] - 1)


def _attr(archetypes: tuple[Behaviour, ...], name: str) -> np.ndarray:
    return np.array([getattr(a, name) for a in archetypes], dtype=float)


def _mixed_sessions(
    config: SimulationConfig, scenario: Scenario, tastes: tuple[Taste, ...],
    behaviours: tuple[Behaviour, ...], taste_mix: np.ndarray, behaviour_mix: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n = config.customers
    # Visit frequency and rhythm belong to the customer: they follow the whole behaviour mix.
    # Rates are relative to the geometric mean of those in play, so sessions_mean stays the
    # typical number of sessions.
    log_rate = np.log(_attr(behaviours, "visit_rate"))
    cadence = np.exp(behaviour_mix @ (log_rate - log_rate.mean()))
    regularity = behaviour_mix @ _attr(behaviours, "regularity")
    mean = config.sessions_mean * scenario.session_scale * cadence
    spread = 0.6
    activity = rng.lognormal(np.log(mean) - spread**2 / 2, spread, n)
    per_customer = 1 + rng.poisson(np.maximum(activity - 1, 0))
    if scenario.max_sessions:
        per_customer = np.minimum(per_customer, scenario.max_sessions)
    customer = np.repeat(np.arange(n), per_customer)
    taste = _draw(taste_mix[customer], rng)
    behaviour = _draw(behaviour_mix[customer], rng)
    off_mix = rng.random(customer.size) < scenario.off_mix_share
    taste[off_mix] = rng.integers(0, len(tastes), int(off_mix.sum()))
    behaviour[off_mix] = rng.integers(0, len(behaviours), int(off_mix.sum()))
    affinity = np.array([[t.categories.get(c, 0.0) for c in CATEGORIES] for t in tastes])
    category = _draw(affinity[taste], rng)
    off_category = rng.random(customer.size) < config.off_persona_share
    category[off_category] = rng.integers(0, len(CATEGORIES), int(off_category.sum()))
    depth = _attr(behaviours, "views_per_session")[behaviour] * scenario.view_scale
    views = 1 + rng.poisson(np.maximum(depth - 1, 0))
    return {"customer": customer, "taste": taste, "behaviour": behaviour, "off_mix": off_mix,
            "category": category, "views": views, "regularity": regularity[customer]}


def _log_relative_price(catalogue: dict[str, np.ndarray]) -> np.ndarray:
    """log(price / median price of the product's category)."""
    log_price = np.log(catalogue["price"])
    median = np.zeros(len(CATEGORIES))
    for c in range(len(CATEGORIES)):
        median[c] = np.median(log_price[catalogue["category"] == c])
    return log_price - median[catalogue["category"]]


def _pick_within(
    weights: np.ndarray, group: np.ndarray, category: np.ndarray,
    catalogue: dict[str, np.ndarray], rng: np.random.Generator,
) -> np.ndarray:
    """A product of each row's category, drawn by ``weights[group]`` (groups x products)."""
    order = np.argsort(catalogue["category"], kind="stable")
    bounds = np.searchsorted(catalogue["category"][order], np.arange(len(CATEGORIES) + 1))
    chosen = np.empty(group.size, dtype=np.int64)
    for g in range(weights.shape[0]):  # one vectorised draw per group
        rows = np.flatnonzero(group == g)
        if rows.size == 0:
            continue
        cum = np.concatenate([[0.0], np.cumsum(weights[g][order])])
        lo, hi = bounds[category[rows]], bounds[category[rows] + 1]
        target = cum[lo] + rng.random(rows.size) * (cum[hi] - cum[lo])
        pos = np.searchsorted(cum, target, side="right") - 1
        chosen[rows] = order[np.clip(pos, lo, hi - 1)]
    return chosen


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _mixed_events(
    config: SimulationConfig, scenario: Scenario, behaviours: tuple[Behaviour, ...],
    catalogue: dict[str, np.ndarray], sessions: dict[str, np.ndarray], rng: np.random.Generator,
) -> list[np.ndarray]:
    """Funnel events of every session: (customer, seconds since start, action, product)."""
    session = np.repeat(np.arange(sessions["views"].size), sessions["views"])
    size = session.size
    b = sessions["behaviour"][session]
    customer = sessions["customer"][session]
    category = sessions["category"][session]
    log_rel = _log_relative_price(catalogue)

    # Which items: popularity times relative price to the behaviour's price sensitivity.
    weights = catalogue["popularity"][None, :] * np.exp(
        -_attr(behaviours, "price_sensitivity")[:, None] * log_rel[None, :])
    product = _pick_within(weights, b, category, catalogue, rng)
    repeat_share = _attr(behaviours, "repeat_share")
    if repeat_share.any():
        # Two favourite products per customer and category, drawn by popularity.
        slots = config.customers * len(CATEGORIES) * 2
        fav_category = np.tile(np.repeat(np.arange(len(CATEGORIES)), 2), config.customers)
        favourites = _pick_within(catalogue["popularity"][None, :], np.zeros(slots, np.int64),
                                  fav_category, catalogue, rng).reshape(config.customers, -1)
        repeat = rng.random(size) < repeat_share[b]
        slot = 2 * category[repeat] + rng.integers(0, 2, int(repeat.sum()))
        product[repeat] = favourites[customer[repeat], slot]

    gaps = np.minimum(2.0 + rng.exponential(_attr(behaviours, "dwell_seconds")[b]), 900.0)
    gaps[np.r_[True, session[1:] != session[:-1]]] = 0.0
    offset = _segment_cumsum(gaps, session)

    lr = log_rel[product]
    p_cart = _logistic(_logit(_attr(behaviours, "p_cart"))[b]
                       - _attr(behaviours, "cart_price_sensitivity")[b] * lr)
    p_remove = _logistic(_logit(_attr(behaviours, "p_remove"))[b]
                         + _attr(behaviours, "remove_price_sensitivity")[b] * lr)
    cart = rng.random(size) < p_cart
    remove = cart & (rng.random(size) < p_remove)
    buy = cart & ~remove & (rng.random(size) < _attr(behaviours, "p_purchase")[b])
    delay = np.array([a.cart_delay_seconds for a in behaviours])[b]
    cart_t = offset + rng.uniform(delay[:, 0], delay[:, 1])
    if scenario.same_second_share:
        same = rng.random(size) < scenario.same_second_share
        cart_t[same] = offset[same]
    remove_t = cart_t + rng.exponential(90.0, size)
    end = np.where(remove, remove_t, np.where(cart, cart_t, offset))
    duration = np.zeros(sessions["views"].size)
    np.maximum.at(duration, session, end)
    buy_now = _attr(behaviours, "buy_now")[b].astype(bool)
    # Impulse buys check out seconds after carting; the rest in one checkout at the end of the
    # session, one purchase line per product however often it was carted.
    checkout = duration + rng.uniform(30, 120, duration.size)
    buy_t = np.where(buy_now, cart_t + rng.uniform(5, 30, size), checkout[session])
    bought = np.flatnonzero(buy)
    _, first = np.unique(session[bought] * config.products + product[bought],
                         return_index=True)
    buy = np.zeros(size, dtype=bool)
    buy[bought[first]] = True
    np.maximum.at(duration, session[buy], buy_t[buy])
    start = _mixed_starts(config, sessions, duration, rng)

    rows = [np.ones(size, bool), cart, remove, buy]
    times = [offset, cart_t, remove_t, buy_t]
    actions = ["view", "add_to_cart", "remove_from_cart", "purchase"]
    sess = np.concatenate([session[r] for r in rows])
    return [
        sessions["customer"][sess],
        start[sess] + np.concatenate([t[r] for t, r in zip(times, rows, strict=True)]),
        np.concatenate([np.full(int(r.sum()), a) for a, r in zip(actions, rows, strict=True)]),
        np.concatenate([product[r] for r in rows]),
    ]


def _mixed_starts(
    config: SimulationConfig, sessions: dict[str, np.ndarray], duration: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Session start times: a blend, by the customer's regularity, of evenly spaced times
    (random phase, small jitter) and uniformly random ones; then pushed > 30 minutes apart."""
    customer = sessions["customer"]  # sessions are grouped by customer
    horizon = config.days * 86_400.0
    count = np.bincount(customer, minlength=config.customers)
    first = np.r_[0, np.cumsum(count)[:-1]]
    rank = np.arange(customer.size) - first[customer]
    interval = horizon / count[customer]
    phase = rng.random(config.customers)[customer]
    grid = (rank + phase) * interval + rng.normal(0.0, 0.05, customer.size) * interval
    uniform = rng.uniform(0, horizon, customer.size)
    uniform = uniform[np.lexsort((uniform, customer))]  # sorted within each customer
    reg = sessions["regularity"]
    raw = np.clip(reg * grid + (1 - reg) * uniform, 0.0, horizon)
    return _push_apart(raw, customer, duration, rng)


def _push_apart(raw: np.ndarray, customer: np.ndarray, duration: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Shift start times so a customer's sessions are > 30 minutes apart."""
    order = np.lexsort((raw, customer))
    customer, raw, duration = customer[order], raw[order], duration[order]
    spacing = duration + 1860.0 + rng.exponential(3600.0, customer.size)
    before = _segment_cumsum(spacing, customer) - spacing
    start = np.empty_like(raw)
    start[order] = _segment_cummax(raw - before, customer) + before
    return start


def _bot_events(config: SimulationConfig, bots: int, catalogue: dict[str, np.ndarray],
                rng: np.random.Generator) -> list[np.ndarray]:
    """Bots: 1-3 sessions each of 150-400 views across the catalogue, under a second apart."""
    per_bot = rng.integers(1, 4, bots)
    bot = np.repeat(np.arange(bots), per_bot)
    views = rng.integers(150, 401, bot.size)
    session = np.repeat(np.arange(bot.size), views)
    gaps = 0.2 + rng.exponential(0.6, session.size)
    gaps[np.r_[True, session[1:] != session[:-1]]] = 0.0
    offset = _segment_cumsum(gaps, session)
    duration = np.zeros(bot.size)
    np.maximum.at(duration, session, offset)
    raw = rng.uniform(0, config.days * 86_400.0, bot.size)
    start = _push_apart(raw, bot, duration, rng)
    return [config.customers + bot[session], start[session] + offset,
            np.full(session.size, "view"), rng.integers(0, config.products, session.size)]


def _assemble(
    config: SimulationConfig, scenario: Scenario, user_ids: pl.Series, customer: np.ndarray,
    seconds: np.ndarray, action: np.ndarray, product: np.ndarray, *, rng: np.random.Generator,
) -> pl.DataFrame:
    """Whole seconds, the scenario's logging noise, time order, and the event frame."""
    seconds = np.round(seconds)
    noisy = bool(scenario.duplicate_share or scenario.jitter_share or scenario.same_second_share)
    if scenario.duplicate_share:
        twice = np.flatnonzero(rng.random(seconds.size) < scenario.duplicate_share)
        customer, seconds, action, product = (np.concatenate([a, a[twice]]) for a in
                                              (customer, seconds, action, product))
    if scenario.jitter_share:
        moved = np.flatnonzero(rng.random(seconds.size) < scenario.jitter_share)
        seconds[moved] = np.maximum(seconds[moved] + rng.choice([-1.0, 1.0], moved.size), 0.0)
    # Ties keep their order (views, carts, removals, purchases) unless the scenario is noisy.
    order = (np.lexsort((rng.random(seconds.size), seconds)) if noisy
             else np.argsort(seconds, kind="stable"))
    origin = np.datetime64(config.start, "s")
    return pl.DataFrame(
        {
            "user_id": user_ids.gather(customer[order]),
            "timestamp": (origin + seconds[order].astype("timedelta64[s]")).astype(
                "datetime64[us]"
            ),
            "action": action[order],
            "product_id": _ids("p", np.arange(config.products)).gather(product[order]),
        }
    )
