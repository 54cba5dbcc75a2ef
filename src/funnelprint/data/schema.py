"""Canonical event schema, column aliases of common shop exports, and the action vocabulary."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REQUIRED_FIELDS = ("customer", "timestamp", "action", "product")
OPTIONAL_FIELDS = ("session", "category", "price", "brand", "quantity")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

#: Name of each field in the canonical event table.
CANONICAL_COLUMN = {
    "customer": "customer_id",
    "timestamp": "timestamp",
    "action": "action",
    "product": "product_id",
    "session": "session_id",
    "category": "category",
    "price": "price",
    "brand": "brand",
    "quantity": "quantity",
}

#: Source column names recognised without flags, in order of preference (lower-cased).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "customer": (
        "customer_id", "user_id", "visitorid", "visitor_id", "userid", "customerid",
        "client_id", "uid", "user", "customer",
    ),
    "timestamp": (
        "timestamp", "event_time", "event_timestamp", "ts", "time", "datetime", "date",
    ),
    "action": ("action", "event_type", "event", "behavior", "behaviour", "action_type", "type"),
    "product": ("product_id", "itemid", "item_id", "productid", "sku", "item", "product"),
    "session": ("session_id", "user_session", "sessionid", "session"),
    "category": ("category", "category_code", "category_id", "categoryid", "category_name"),
    "price": ("price", "unit_price", "amount"),
    "brand": ("brand", "brand_name"),
    "quantity": ("quantity", "qty"),
}

#: Where a file has both, REES46-style, fill missing category codes from category ids.
CATEGORY_FALLBACKS = (("category_code", "category_id"),)

#: Cell values that stand for "no value" (pandas, Python, SQL and JSON exports write these).
#: An id that reads like one of these is treated as empty; an optional field, as null.
#: Compared in lower case.
MISSING_VALUES = ("nan", "null", "none", "<na>")

CANONICAL_ACTIONS = ("view", "add_to_cart", "remove_from_cart", "purchase")

ACTION_SYNONYMS: dict[str, str] = {
    "view": "view",
    "pv": "view",
    "click": "view",
    "detail": "view",
    "page_view": "view",
    "product_view": "view",
    "add_to_cart": "add_to_cart",
    "cart": "add_to_cart",
    "addtocart": "add_to_cart",
    "add": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "remove": "remove_from_cart",
    "removefromcart": "remove_from_cart",
    "purchase": "purchase",
    "buy": "purchase",
    "transaction": "purchase",
    "order": "purchase",
}

#: Short prefix of action-item tokens: ``cart_p001``.
TOKEN_PREFIX = {
    "view": "view",
    "add_to_cart": "cart",
    "remove_from_cart": "remove",
    "purchase": "buy",
}


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column feeds each canonical field, and how raw actions are renamed."""

    columns: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] | None = None

    @classmethod
    def from_options(
        cls,
        columns: str | None = None,
        actions: str | None = None,
        names: str | None = None,
    ) -> ColumnMapping:
        """Build a mapping from the CLI forms ``customer=COL,...``, ``RAW=CANONICAL,...``
        and ``a,b,c``."""
        column_map = _parse_pairs(columns, "--columns")
        unknown = sorted(set(column_map) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"--columns: unknown field(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(FIELDS)}"
            )
        action_map = {raw.lower(): canonical_target(raw, target)
                      for raw, target in _parse_pairs(actions, "--actions").items()}
        name_list = tuple(n.strip() for n in names.split(",")) if names else None
        if name_list is not None and any(not n for n in name_list):
            raise ValueError("--names: empty column name")
        return cls(columns=column_map, actions=action_map, names=name_list)

    def resolve(self, available: Iterable[str]) -> dict[str, str]:
        """Return canonical field -> source column, explicit choices first, then aliases."""
        available = list(available)
        lower = {c.lower().strip(): c for c in available}
        resolved: dict[str, str] = {}
        shared = [c for c in set(self.columns.values())
                  if list(self.columns.values()).count(c) > 1]
        if shared:
            fields = [f for f, c in self.columns.items() if c == shared[0]]
            raise ValueError(f"--columns maps {' and '.join(fields)} to the same column "
                             f"{shared[0]!r}; each field needs its own column")
        for fld, col in self.columns.items():
            if col not in available:
                raise ValueError(
                    f"--columns {fld}={col}: no such column; the file has {', '.join(available)}"
                )
            resolved[fld] = col
        taken = set(resolved.values())
        for fld in FIELDS:
            if fld in resolved:
                continue
            for alias in COLUMN_ALIASES[fld]:
                match = lower.get(alias)
                if match is not None and match not in taken:
                    resolved[fld] = match
                    taken.add(match)
                    break
        return resolved

    def canonical_action(self, raw: str) -> str:
        key = raw.strip().lower()
        if key in self.actions:
            return self.actions[key]
        return ACTION_SYNONYMS.get(key, key)


def looks_like_header(fields: Iterable[str]) -> bool:
    """True when any field of a first line is a column name we recognise."""
    known = {alias for aliases in COLUMN_ALIASES.values() for alias in aliases}
    known |= {"transactionid", "category_code", "category_id"}
    return any(f.strip().lower() in known for f in fields)


def _parse_pairs(text: str | None, flag: str) -> dict[str, str]:
    if not text:
        return {}
    # CSV rules, so a column name holding a comma can be given quoted:
    # --columns 'customer=user,"product=product, id"'
    try:
        items = next(csv.reader([text], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise ValueError(f"{flag} {text!r}: {exc}") from None
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{flag}: expected KEY=VALUE pairs separated by commas, got {item!r}"
                             " (quote a pair whose name holds a comma)")
        if key.strip() in pairs:
            raise ValueError(f"{flag}: {key.strip()} is given twice")
        pairs[key.strip()] = value.strip()
    return pairs


def canonical_target(raw: str, target: str) -> str:
    """The canonical action an ``--actions RAW=TARGET`` pair maps to (synonyms such as
    ``buy`` or ``cart`` accepted); anything else is a ``ValueError``."""
    canonical = ACTION_SYNONYMS.get(target.strip().lower())
    if canonical is None:
        raise ValueError(f"--actions {raw}={target}: {target!r} is not a funnel action; use "
                         f"one of {', '.join(CANONICAL_ACTIONS)} (or a synonym such as buy, "
                         "cart, remove)")
    return canonical
