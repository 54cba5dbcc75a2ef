"""Model directories: a JSON manifest plus safetensors arrays. Nothing is unpickled."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

FORMAT = "funnelprint-model"
FORMAT_VERSION = 2  # 2: profile segment centres are stored in Hellinger coordinates
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
STATE = "state.json"
_LIBRARIES = ("funnelprint", "numpy", "polars", "scikit-learn", "gensim", "torch",
              "safetensors")


class ArtifactError(ValueError):
    """A model directory that is missing, foreign, of another version, or corrupt."""


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_artifact(directory: str | Path, kind: str, params: dict, arrays: dict[str, np.ndarray],
                  state: dict, fingerprint: dict) -> Path:
    """Write ``manifest.json``, ``arrays.safetensors`` and ``state.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    save_file(contiguous, str(directory / ARRAYS))
    (directory / STATE).write_text(json.dumps(state))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": params,
        "data_fingerprint": fingerprint,
        "versions": library_versions(),
        "files": {ARRAYS: _sha256(directory / ARRAYS), STATE: _sha256(directory / STATE)},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return directory


def load_artifact(directory: str | Path, kind: str) -> tuple[dict, dict[str, np.ndarray], dict]:
    """Read and verify a model directory; returns (manifest, arrays, state)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"{directory}: not a funnelprint model directory (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: corrupt manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{directory}: not a funnelprint model (format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{directory}: format version {manifest.get('format_version')} "
                            f"is not supported (this funnelprint reads {FORMAT_VERSION})")
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{directory}: holds a {manifest.get('kind')!r} model, "
                            f"not a {kind!r} model")
    for name, digest in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: missing {name}")
        if _sha256(path) != digest:
            raise ArtifactError(f"{path}: checksum mismatch; the file is corrupt or was changed")
    try:
        arrays = load_file(str(directory / ARRAYS))
        state = json.loads((directory / STATE).read_text())
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{directory}: cannot read model files ({exc})") from exc
    return manifest, arrays, state


def fingerprint_events(events: object) -> dict:
    """A cheap description of the training data: sizes, time range and a hash of the ids."""
    import polars as pl

    assert isinstance(events, pl.DataFrame)
    digest = hashlib.sha256()
    for column in ("customer_id", "product_id", "action"):
        digest.update(str(events[column].hash(7).sum()).encode())
    first, last = events["timestamp"].min(), events["timestamp"].max()
    return {
        "events": events.height,
        "customers": events["customer_id"].n_unique(),
        "products": events["product_id"].n_unique(),
        "first": first.isoformat() if first is not None else None,
        "last": last.isoformat() if last is not None else None,
        "sha256": digest.hexdigest(),
    }
