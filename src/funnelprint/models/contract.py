"""The contract every recommender follows.

A model is a :class:`Recommender` subclass with one frozen, validated :class:`ModelConfig`.
It learns from a :class:`~funnelprint.data.dataset.Dataset` (``fit``), scores histories
(``score``; ``recommend`` is shared), and turns what it learned into arrays + JSON
(``to_state``) and back (``from_state``), which is all :mod:`funnelprint.models.persist`
needs to save and load it. Validation reaches a model as a :data:`Validator` callable that
the caller builds; models never import the evaluation code.

Optional abilities are declared by inheriting a mixin, never probed for:
:class:`CandidateScorer` (scores given candidate lists, as a re-ranker does),
:class:`Prepares` (solves something from each history once, for its scores and reasons
alike) and :class:`Explainer` (gives each recommended item a reason).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypedDict, TypeVar, cast

import numpy as np
from typing_extensions import Self

from funnelprint.artifacts import ArtifactError
from funnelprint.checks import Config
from funnelprint.data.dataset import Dataset
from funnelprint.data.sequences import Sequences
from funnelprint.models.ranking import batch_rows, exclude_items, top_k

Validator = Callable[["Recommender[Any]"], float]
"""Scores a fitted model on held-out customers; higher is better. Built by the caller."""


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ModelConfig(Config):
    """Base of every model's configuration: frozen, validated on construction (see
    :class:`~funnelprint.checks.Config`, which every configuration of the package shares).

    Subclasses are frozen dataclasses whose fields are the model's parameters (JSON
    scalars), and extend :meth:`validate` with range checks. ``PRESETS`` names complete
    alternative settings (e.g. one per validation protocol); :meth:`from_params` starts from
    a preset and applies the given parameters on top.
    """


# ---------------------------------------------------------------------- learned state


@dataclass
class ModelState:
    """What a fitted model learned: named arrays (stored as safetensors) and JSON ``meta``.

    Readers use :meth:`array`, which checks presence, shape and finiteness, so that a
    tampered or truncated artifact fails with one clear message.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def array(self, name: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        """The array ``name``; ``shape`` entries that are None match any size."""
        if name not in self.arrays:
            raise ArtifactError(f"model state lacks the array {name!r}")
        value = np.asarray(self.arrays[name])
        if shape is not None and (value.ndim != len(shape) or any(
                want is not None and have != want
                for have, want in zip(value.shape, shape, strict=True))):
            raise ArtifactError(f"model state array {name!r} has shape {value.shape}, "
                                f"expected {tuple('*' if s is None else s for s in shape)}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ArtifactError(f"model state array {name!r} holds non-finite values")
        return value

    def value(self, name: str) -> Any:
        if name not in self.meta:
            raise ArtifactError(f"model state lacks the entry {name!r}")
        return self.meta[name]

    def nested(self, prefix: str) -> ModelState:
        """The state stored under ``prefix`` by :meth:`with_nested`."""
        arrays = {k[len(prefix) + 1:]: v for k, v in self.arrays.items()
                  if k.startswith(prefix + ".")}
        meta = self.meta.get(prefix)
        return ModelState(arrays, meta if isinstance(meta, dict) else {})

    def with_nested(self, prefix: str, other: ModelState) -> ModelState:
        """This state plus ``other``'s arrays and meta under ``prefix``."""
        arrays = {**self.arrays, **{f"{prefix}.{k}": v for k, v in other.arrays.items()}}
        return ModelState(arrays, {**self.meta, prefix: other.meta})


# ---------------------------------------------------------------------- the recommender

C = TypeVar("C", bound=ModelConfig)


class Recommender(ABC, Generic[C]):
    """Fit on a :class:`Dataset`; score every item for a batch of histories.

    Subclasses set ``key`` (the registry name) and ``config_class``, read their parameters
    from ``self.config`` and keep learned state in attributes ending with ``_``. ``score``
    returns finite numbers where it has an opinion; rankers treat non-finite scores as the
    worst anyway. ``fit_report_`` holds what training wants reported (best epoch, ...).
    """

    key: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: Optional inputs the model reads, so that callers prepare them and refuse options
    #: that would be ignored: "validation" (a :data:`Validator` in ``fit``, for early
    #: stopping and checkpoint choice), "sessions" (events' session ids), "item_metadata"
    #: (category, brand, price per item), "every_event" (each event its own step, rather
    #: than consecutive events on one product collapsed into one step).
    reads: ClassVar[frozenset[str]] = frozenset()
    dataset_: Dataset
    #: The part of its dataset a loaded model learned from (see ``persist.save``).
    trained_on_: str = ""

    def __init__(self, config: C | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("give a config or parameters, not both")
        if config is None:
            config = cast(C, self.config_class.from_params(params))
        elif not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"not a {type(config).__name__}")
        self.config: C = config
        self.fit_report_: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        return self.config.get_params()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # ------------------------------------------------------------------ learning

    @abstractmethod
    def fit(self, train: Dataset, valid: Validator | None = None) -> Self:
        """Learn from ``train``; ``valid``, when given, scores the model on held-out
        customers (models that select checkpoints or stop early call it)."""

    @abstractmethod
    def score(self, history: Sequences, customers: np.ndarray | None = None) -> np.ndarray:
        """Scores of shape (history.n_rows, n_items), higher is better."""

    # ------------------------------------------------------------------ state

    @abstractmethod
    def to_state(self) -> ModelState:
        """What :meth:`fit` learned, beyond the dataset (saved beside it)."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: C, dataset: Dataset, state: ModelState) -> Self:
        """A fitted model from its config, its dataset and :meth:`to_state`'s output."""

    def _check_fitted(self) -> None:
        if not hasattr(self, "dataset_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    # ------------------------------------------------------------------ serving

    def recommend(
        self, customers: np.ndarray | None = None, k: int = 10, exclude_seen: bool = True,
        history: Sequences | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items and scores per customer (dataset indices); -1 pads short lists.

        By default the histories are the customers' sequences in ``dataset_``. ``k`` larger
        than the catalogue is cut to its size. (:func:`funnelprint.models.serving.answer`
        gives the products with reasons; both rank and exclude the same way.)
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        n_items = self.dataset_.n_items
        k = min(k, n_items)
        if customers is None:
            customers = np.arange(self.dataset_.n_customers)
        customers = np.asarray(customers, dtype=np.int64)
        if history is None:
            history = self.dataset_.sequences.select(customers)
        step = batch_rows(n_items)
        items = np.full((customers.size, k), -1, dtype=np.int64)
        scores = np.full((customers.size, k), -np.inf, dtype=np.float32)
        for start in range(0, customers.size, step):
            rows = np.arange(start, min(start + step, customers.size))
            part = history.select(rows)
            block = self.score(part, customers[rows]).astype(np.float32, copy=False)
            block = np.where(np.isfinite(block), block, -np.inf)
            exclude_items(block, part, "seen" if exclude_seen else "none",
                          self.dataset_.action_names)
            top, top_scores = top_k(block, k)
            items[rows], scores[rows] = top, top_scores
        return items, scores


# ---------------------------------------------------------------------- abilities


class CandidateScorer(ABC):
    """Scores given candidate lists directly (a re-ranker): the sampled protocol ranks
    exactly these scores instead of reading them off a full score row."""

    @abstractmethod
    def score_candidates(self, history: Sequences, customers: np.ndarray | None,
                         candidates: np.ndarray) -> np.ndarray:
        """Scores of shape ``candidates.shape`` (rows, C)."""


class Evidence(TypedDict):
    step: str
    weight: float


class Reason(TypedDict):
    text: str
    evidence: list[Evidence]


class Prepares(ABC):
    """Solves something from every history before scoring it (the trait model: each
    customer's trait profile). A :class:`~funnelprint.models.serving.Request` solves it
    once and hands it to :meth:`score_prepared` and to the reasons."""

    @abstractmethod
    def prepare_rows(self, history: Sequences) -> Any:
        """What scoring and explaining the rows of ``history`` need, solved once."""

    @abstractmethod
    def score_prepared(self, history: Sequences, prepared: Any) -> np.ndarray:
        """:meth:`Recommender.score` of ``history`` given :meth:`prepare_rows`'s result."""


class Explainer(ABC):
    """Gives each recommended item a reason a person can read and check."""

    @abstractmethod
    def reasons(self, history: Sequences, items: np.ndarray) -> list[Reason]:
        """One reason per item in ``items`` for the customer whose ``history`` (one row)
        is given."""

    def reasons_for(self, history: Sequences, items: np.ndarray, prepared: Any = None
                    ) -> list[list[Reason]]:
        """Reasons for the listed items of every row: ``items`` has shape (rows, k), -1
        where a row lists fewer; ``prepared`` is a :class:`Prepares` model's
        :meth:`~Prepares.prepare_rows` of ``history``. Row by row unless a model does better."""
        out = []
        for row in range(history.n_rows):
            listed = items[row][items[row] >= 0]
            out.append(self.reasons(history.select(np.array([row])), listed)
                       if listed.size else [])
        return out


__all__ = ["CandidateScorer", "Evidence", "Explainer", "ModelConfig", "ModelState", "Prepares",
           "Reason", "Recommender", "Validator"]
