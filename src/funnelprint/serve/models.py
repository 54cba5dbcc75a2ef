"""The models a service answers from: loaded together from their directories, swapped as
one whole on reload so that a request that began on the old set finishes on it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funnelprint.artifacts import ArtifactError, read_manifest
from funnelprint.models import load
from funnelprint.models.contract import Recommender
from funnelprint.models.traits import TraitsRecommender


@dataclass(frozen=True)
class Served:
    """One loaded model: its name in the API, registry key, directory and version (the
    start of its manifest checksum)."""

    name: str
    key: str
    path: str
    version: str
    model: Recommender[Any]


@dataclass(frozen=True)
class ModelSet:
    """Models by name, the first being the default; ``traits`` is the first trait model
    (profiles, similar customers, traits and segments come from it)."""

    models: dict[str, Served]

    @property
    def default(self) -> Served:
        return next(iter(self.models.values()))

    @property
    def traits(self) -> TraitsRecommender | None:
        for served in self.models.values():
            if isinstance(served.model, TraitsRecommender):
                return served.model
        return None

    def get(self, name: str | None) -> Served:
        if name is None:
            return self.default
        if name not in self.models:
            raise KeyError(f"no model named {name!r}; loaded: {', '.join(self.models)}")
        return self.models[name]

    def versions(self) -> dict[str, tuple[str, str]]:
        return {n: (s.key, s.version) for n, s in self.models.items()}


def load_set(paths: Sequence[str | Path]) -> ModelSet:
    """Load every model directory; ``ArtifactError`` names the first that fails."""
    if not paths:
        raise ArtifactError("no model directory given")
    models: dict[str, Served] = {}
    for path in paths:
        try:
            model = load(path)
            version = str(read_manifest(path).get("checksum", ""))[:12]
        except ArtifactError as exc:
            raise ArtifactError(f"cannot load the model in {path}: {exc}") from exc
        name = model.key if model.key not in models else Path(path).name
        if name in models:
            raise ArtifactError(f"two models named {name!r}; give their directories "
                                "different names")
        models[name] = Served(name, model.key, str(path), version, model)
    return ModelSet(models)


class Models:
    """The serving model set; :meth:`reload` loads a new set beside it and swaps."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [str(p) for p in paths]
        self.current = load_set(self.paths)
        self._lock = threading.Lock()

    def reload(self, paths: Sequence[str | Path] | None = None) -> ModelSet:
        """Load ``paths`` (default: the current directories, re-read) and serve them; on
        failure the current set keeps serving and ``ArtifactError`` says why."""
        with self._lock:
            chosen = [str(p) for p in paths] if paths else self.paths
            fresh = load_set(chosen)
            self.current, self.paths = fresh, chosen
            return fresh


__all__ = ["ModelSet", "Models", "Served", "load_set"]
