"""A funnel event simulator with known customer personas.

Each customer is a mix of personas. A persona says *what* a customer shops (category
affinities) and *how* (price sensitivity, browsing depth, add-to-cart, removal and purchase
rates). Every session draws one persona from the customer's mix, so the mix is recoverable from
behaviour, which is what ``truth.csv`` lets later stages measure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
class SimulationConfig:
    customers: int = 2000
    products: int = 600
    personas: int = 6
    seed: int = 0
    days: int = 60
    mix_concentration: float = 0.3  # Dirichlet alpha of a customer's persona mix
    sessions_mean: float = 8.0  # mean sessions per customer (log-normal spread)
    off_persona_share: float = 0.1  # sessions that browse a random category
    zipf_exponent: float = 1.0
    start: str = "2024-01-01"

    def __post_init__(self) -> None:
        if self.customers < 1 or self.products < len(CATEGORIES):
            raise ValueError(f"need >= 1 customer and >= {len(CATEGORIES)} products")
        if not 1 <= self.personas <= len(PERSONAS):
            raise ValueError(f"personas must be between 1 and {len(PERSONAS)}")


@dataclass
class Simulation:
    events: pl.DataFrame  # user_id, timestamp, action, product_id (time-ordered)
    products: pl.DataFrame  # product_id, category, brand, price
    truth: pl.DataFrame  # customer_id, dominant_persona, <persona> shares, prior_<persona>
    personas: tuple[Persona, ...]

    def write(self, out: str | Path) -> dict[str, Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "events": out / "events.csv",
            "products": out / "products.csv",
            "truth": out / "truth.csv",
            "personas": out / "personas.json",
        }
        self.events.with_columns(
            pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S")
        ).write_csv(paths["events"])
        self.products.write_csv(paths["products"])
        self.truth.write_csv(paths["truth"], float_precision=4)
        paths["personas"].write_text(json.dumps([asdict(p) for p in self.personas], indent=2))
        return paths


def simulate(config: SimulationConfig | None = None) -> Simulation:
    """Draw a catalogue, customers with persona mixes, and their funnel events."""
    config = config or SimulationConfig()
    rng = np.random.default_rng(config.seed)
    personas = PERSONAS[: config.personas]
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
    products = pl.DataFrame(
        {
            "product_id": _ids("p", np.arange(config.products)),
            "category": np.array(CATEGORIES)[catalogue["category"]],
            "brand": catalogue["brand"],
            "price": np.round(catalogue["price"], 2),
        }
    )
    return Simulation(events, products, truth, personas)


def _ids(prefix: str, index: np.ndarray) -> pl.Series:
    width = max(4, len(str(int(index.max()) if index.size else 0)))
    return pl.Series(index).cast(pl.String).str.zfill(width).str.replace(r"^", prefix)


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
