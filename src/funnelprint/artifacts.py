"""Model directories: a JSON manifest plus safetensors arrays and JSON state. Nothing is
unpickled.

A directory is written whole into a temporary sibling and then swapped into place, so a
crash or a concurrent writer never leaves a mixed or half-written model, and an interrupted
overwrite keeps the old one. The manifest lists every file's SHA-256 and carries a checksum
of its own content; loading verifies all of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_bytes
from safetensors.numpy import save_file

FORMAT = "funnelprint-model"
FORMAT_VERSION = 3  # 3: one layout for every registered model; manifest checksum
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


def _manifest_checksum(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save_artifact(directory: str | Path, kind: str, params: dict[str, Any],
                  arrays: dict[str, np.ndarray], state: dict[str, Any],
                  fingerprint: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write ``manifest.json``, ``arrays.safetensors`` and ``state.json`` as ``directory``,
    replacing what was there only once everything is written."""
    directory = Path(directory)
    check_target(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp",
                                    dir=directory.parent))
    try:
        contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(contiguous, str(staging / ARRAYS))
        with open(staging / ARRAYS, "rb+") as fh:
            os.fsync(fh.fileno())
        _write_synced(staging / STATE, json.dumps(state).encode())
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            **(extra or {}),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": params,
            "data_fingerprint": fingerprint,
            "versions": library_versions(),
            "files": {ARRAYS: _sha256(staging / ARRAYS), STATE: _sha256(staging / STATE)},
        }
        manifest["checksum"] = _manifest_checksum(manifest)
        _write_synced(staging / MANIFEST, json.dumps(manifest, indent=2).encode())
        os.chmod(staging, 0o755)
        _swap_into_place(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def check_target(directory: str | Path) -> None:
    """Refuse a target that saving would destroy something else in: a file, or a
    non-empty directory that is not a model directory."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ArtifactError(f"{directory} exists and is not a directory")
    if (directory / MANIFEST).is_file():
        return
    if any(directory.iterdir()):
        raise ArtifactError(f"{directory} is a directory with other files in it, not a "
                            "funnelprint model; choose a new or empty directory")


def _swap_into_place(staging: Path, directory: Path) -> None:
    """Make ``staging`` appear as ``directory``; what was there ends up at ``staging``."""
    if not directory.exists():
        try:
            os.rename(staging, directory)
            return
        except OSError:
            if not directory.exists():
                raise
    if not _exchange(staging, directory):
        # No atomic exchange here: move the old one aside first, so it survives a failure.
        aside = staging.with_suffix(".old")
        os.rename(directory, aside)
        os.rename(staging, directory)
        os.rename(aside, staging)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``)."""
    if platform.system() != "Linux":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(result == 0)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The verified manifest of a model directory (format, version, own checksum)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such model directory")
    return _parse_manifest(directory, _read(directory, MANIFEST))


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    if not path.is_file():
        if name == MANIFEST:
            raise ArtifactError(f"{directory}: not a funnelprint model directory (no {MANIFEST})")
        raise ArtifactError(f"{directory}: missing {name}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from exc


def _parse_manifest(directory: Path, raw: bytes) -> dict[str, Any]:
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: corrupt manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{directory}: not a funnelprint model (format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{directory}: format version {manifest.get('format_version')} "
                            f"is not supported (this funnelprint reads {FORMAT_VERSION}); "
                            "fit the model again")
    if manifest.get("checksum") != _manifest_checksum(manifest):
        raise ArtifactError(f"{manifest_path}: checksum mismatch; the manifest is corrupt or "
                            "was changed")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {ARRAYS, STATE}:
        raise ArtifactError(f"{manifest_path}: the manifest does not list {ARRAYS} and {STATE}")
    return manifest


def load_artifact(directory: str | Path, kind: str, attempts: int = 3
                  ) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a model directory; returns (manifest, arrays, state).

    The files are read into memory and checked there, so what is parsed is exactly what
    was verified; a directory replaced while it is being read shows as a checksum mismatch
    and is read again (up to ``attempts`` times).
    """
    directory = Path(directory)
    for attempt in range(attempts):
        manifest = read_manifest(directory)
        if manifest.get("kind") != kind:
            raise ArtifactError(f"{directory}: holds a {manifest.get('kind')!r} artifact, "
                                f"not a {kind!r} one")
        contents = {name: _read(directory, name) for name in (ARRAYS, STATE)}
        bad = [name for name, digest in manifest["files"].items()
               if hashlib.sha256(contents[name]).hexdigest() != digest]
        if not bad:
            break
        if attempt == attempts - 1:
            raise ArtifactError(f"{directory / bad[0]}: checksum mismatch; the file is corrupt "
                                "or was changed")
    try:
        arrays = load_bytes(contents[ARRAYS])
        state = json.loads(contents[STATE])
    except (SafetensorError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{directory}: cannot read model files ({exc})") from exc
    if not isinstance(state, dict):
        raise ArtifactError(f"{directory / STATE}: not a JSON object")
    return manifest, arrays, state
