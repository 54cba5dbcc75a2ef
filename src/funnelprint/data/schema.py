"""Canonical event schema, column aliases of common shop exports, and the action vocabulary."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REQUIRED_FIELDS = ("customer", "timestamp", "action", "product")
OPTIONAL_FIELDS = ("session", "category", "price", "brand", "quantity")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

#: Longest customer, product, session and event id, in characters (the service's customer
#: route takes the same limit, so every id read from a column or stored can be asked for; a
#: customer made from a session, ``session:<id>``, can be up to 8 characters longer).
ID_CHARS = 200
#: Longest text of any other field (category, brand...).
TEXT_CHARS = 1000
ID_FIELDS_OF_EVENTS = ("customer", "product", "session")

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
        "event_date", "eventdate", "created_at",
    ),
    "action": ("action", "event_type", "event", "behavior", "behaviour", "action_type", "type"),
    "product": ("product_id", "itemid", "item_id", "productid", "sku", "sku_id", "item",
                "product"),
    "session": ("session_id", "user_session", "sessionid", "session"),
    "category": ("category", "category_code", "category_id", "categoryid", "category_name",
                 "cate"),
    "price": ("price", "unit_price", "amount"),
    "brand": ("brand", "brand_name"),
    "quantity": ("quantity", "qty"),
}

#: Where a file has both, REES46-style, fill missing category codes from category ids.
CATEGORY_FALLBACKS = (("category_code", "category_id"),)

#: Cell values that stand for "no value" (pandas, R, Excel, SQL and JSON exports write these).
#: An id or action that reads like one of these is missing; an optional field, null.
#: Compared in lower case.
MISSING_VALUES = ("na", "n/a", "#n/a", "nan", "null", "none", "nil", "<na>")

#: The funnel: every model and feature knows these four.
CANONICAL_ACTIONS = ("view", "add_to_cart", "remove_from_cart", "purchase")
#: Actions read by name without being funnel steps (kept as their own type, like any other
#: action, but recognised from their synonyms and given a short token prefix).
NAMED_ACTIONS = ("favorite",)
KNOWN_ACTIONS = CANONICAL_ACTIONS + NAMED_ACTIONS

#: Characters dropped when raw action values are compared: ``Add-To-Cart``, ``add_to_cart``
#: and ``add to cart`` are one value.
ACTION_FOLD = r"[\s_\-]+"

#: Raw action values recognised without flags, by their folded form (lower case, without
#: spaces, underscores or hyphens; see :func:`fold_action`). One table for every reader: event
#: files, the service's event batches and ``--actions`` targets.
ACTION_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(
        ("view", "views", "viewed", "pv", "pageview", "productview", "viewitem", "itemview",
         "click", "clicks", "detail", "detailview", "productdetail"), "view"),
    **dict.fromkeys(
        ("addtocart", "cart", "carted", "add", "atc", "addcart", "cartadd", "addedtocart",
         "addtobasket", "basket", "addtobag"), "add_to_cart"),
    **dict.fromkeys(
        ("removefromcart", "remove", "removed", "removecart", "cartremove",
         "removedfromcart", "removefrombasket", "removefrombag"), "remove_from_cart"),
    **dict.fromkeys(
        ("purchase", "purchased", "buy", "bought", "pay", "paid", "payment", "checkout",
         "order", "ordered", "transaction", "conversion", "sale", "sold"), "purchase"),
    # A wish list is not a cart: favouriting is its own action type.
    **dict.fromkeys(
        ("favorite", "favourite", "fav", "favorited", "favourited", "wishlist",
         "addtowishlist", "addtofavorites", "addtofavourites", "collect"), "favorite"),
}

#: Short prefix of action-item tokens: ``cart_p001``. Other actions use their own name.
TOKEN_PREFIX = {
    "view": "view",
    "add_to_cart": "cart",
    "remove_from_cart": "remove",
    "purchase": "buy",
    "favorite": "fav",
}

#: How a step of a customer's history reads in a reason (``carted p001``); other actions
#: read by their own name (``consult p001``).
ACTION_VERBS = {
    "view": "viewed",
    "add_to_cart": "carted",
    "remove_from_cart": "removed",
    "purchase": "bought",
    "favorite": "favorited",
}


def fold_action(raw: str) -> str:
    """The form raw action values are compared in (see :data:`ACTION_FOLD`)."""
    return re.sub(ACTION_FOLD, "", raw.strip().lower())


def action_verb(name: str) -> str:
    """``carted`` for ``add_to_cart``; an action outside :data:`ACTION_VERBS` reads as its
    own name."""
    return ACTION_VERBS.get(name, name)


MISSING_CUSTOMER = ("drop", "session")


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column feeds each canonical field, and how raw actions are read.

    Parameters
    ----------
    columns
        Canonical field (``customer``, ``timestamp``, ...) -> source column; other fields are
        found by their usual names (:data:`COLUMN_ALIASES`).
    actions
        Raw action value -> action name: a funnel action or one of its synonyms (``buy``,
        ``cart``...), ``favorite``, or any other name, which becomes an action type of its own.
    names
        Column names of a CSV file without a header.
    constant_action
        The action of every row, for a log without an action column (``"view"``).
    missing_customer
        What a row without a customer id becomes: ``"drop"`` (dropped and counted) or
        ``"session"`` (its session id, prefixed ``session:``, stands in for the customer).
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] | None = None
    constant_action: str | None = None
    missing_customer: str = "drop"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise ValueError(
                f"--columns: unknown field(s) {', '.join(unknown)}; expected some of "
                f"{', '.join(FIELDS)}"
            )
        if self.missing_customer not in MISSING_CUSTOMER:
            raise ValueError(f"--missing-customer must be one of {', '.join(MISSING_CUSTOMER)}, "
                             f"not {self.missing_customer!r}")
        # Canonical names throughout, whichever form the caller used.
        object.__setattr__(self, "actions", {
            fold_action(raw): action_name(target, f"--actions {raw}={target}")
            for raw, target in self.actions.items()})
        if self.constant_action is not None:
            if "action" in self.columns:
                raise ValueError(f"give --columns action={self.columns['action']} or --action "
                                 f"{self.constant_action}, not both")
            object.__setattr__(self, "constant_action",
                               action_name(self.constant_action, "--action"))

    @classmethod
    def from_options(
        cls,
        columns: str | None = None,
        actions: str | None = None,
        names: str | None = None,
        action: str | None = None,
        missing_customer: str = "drop",
    ) -> ColumnMapping:
        """Build a mapping from the CLI forms ``customer=COL,...``, ``RAW=NAME,...``,
        ``a,b,c``, ``--action NAME`` and ``--missing-customer drop|session``."""
        name_list = tuple(n.strip() for n in names.split(",")) if names else None
        if name_list is not None and any(not n for n in name_list):
            raise ValueError("--names: empty column name")
        return cls(columns=_parse_pairs(columns, "--columns"),
                   actions=_parse_pairs(actions, "--actions"), names=name_list,
                   constant_action=action, missing_customer=missing_customer)

    def resolve(self, available: Iterable[str]) -> dict[str, str]:
        """Return canonical field -> source column, explicit choices first, then aliases
        (compared in lower case, RecBole type suffixes such as ``:token`` ignored). The
        action has no column where :attr:`constant_action` gives it."""
        available = list(available)
        lower: dict[str, str] = {}
        for c in available:
            lower.setdefault(plain_column_name(c), c)
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
                    f"--columns {fld}={col}: no such column; the file has {listed(available)}"
                )
            resolved[fld] = col
        taken = set(resolved.values())
        for fld in FIELDS:
            if fld in resolved or (fld == "action" and self.constant_action is not None):
                continue
            for alias in COLUMN_ALIASES[fld]:
                match = lower.get(alias)
                if match is not None and match not in taken:
                    resolved[fld] = match
                    taken.add(match)
                    break
        return resolved

    def action_of(self, raw: str) -> str | None:
        """The action name a raw value is read as (``None`` for a missing-value marker);
        the rule :func:`~funnelprint.data.values.action_names` applies to whole columns."""
        lowered = raw.strip().lower()
        folded = fold_action(lowered)
        if folded in self.actions:
            return self.actions[folded]
        if not lowered or lowered in MISSING_VALUES:
            return None
        return ACTION_SYNONYMS.get(folded, lowered)


def listed(columns: Iterable[str], most: int = 12) -> str:
    """Column names for a message: the first ``most``, then how many in all."""
    names = list(columns)
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown}, ... ({len(names):,} columns)"


def plain_column_name(name: str) -> str:
    """A column name as aliases are compared: lower case, stripped, without a RecBole type
    suffix (``user_id:token`` -> ``user_id``)."""
    plain = name.strip().lower()
    base, sep, kind = plain.rpartition(":")
    return base if sep and base and kind in _RECBOLE_TYPES else plain


_RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")


def looks_like_header(fields: Iterable[str]) -> bool:
    """True when any field of a first line is a column name we recognise."""
    known = {alias for aliases in COLUMN_ALIASES.values() for alias in aliases}
    known |= {"transactionid", "category_code", "category_id"}
    return any(plain_column_name(f) in known for f in fields)


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


def action_name(target: str, flag: str = "--actions") -> str:
    """The action name a target of ``--actions RAW=TARGET`` or ``--action TARGET`` stands
    for: a funnel action or ``favorite`` where it is one of their synonyms (``buy``,
    ``cart``, ``wishlist``...), else the target itself in lower case, an action type of its
    own. An empty target or a missing-value marker is a ``ValueError``."""
    name = target.strip().lower()
    if not name or name in MISSING_VALUES:
        raise ValueError(f"{flag}: {target!r} is not an action name")
    if any(ch in name for ch in "\x00\n\r\t"):
        raise ValueError(f"{flag}: an action name holds no control characters")
    return ACTION_SYNONYMS.get(fold_action(name), name)


def parse_product_columns(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``product=COL,category=COL,brand=COL,price=COL`` (any subset) as a dict, checked."""
    pairs = dict(text) if isinstance(text, Mapping) else _parse_pairs(text, "--product-columns")
    unknown = sorted(set(pairs) - set(PRODUCT_FIELDS))
    if unknown:
        raise ValueError(f"--product-columns: unknown field(s) {', '.join(unknown)}; expected "
                         f"some of {', '.join(PRODUCT_FIELDS)}")
    return pairs


#: Fields of a products file.
PRODUCT_FIELDS = ("product", "category", "brand", "price")
