"""Model directories: verified on load, written whole or not at all."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from funnelprint import artifacts
from funnelprint.artifacts import ArtifactError, load_artifact, save_artifact
from funnelprint.models import load, make_model, save
from tests.models.test_contract import shop


def saved(tmp_path: Path, name: str = "m", neighbours: int = 10) -> Path:
    model = make_model("itemknn", neighbours=neighbours).fit(shop())
    return save(model, tmp_path / name)


def rewrite(directory: Path, **changes: object) -> None:
    """Re-save a model directory with a changed manifest, arrays or state, checksums
    recomputed, as a careless or hostile tool would."""
    manifest, arrays, state = load_artifact(directory, "recommender")
    arrays = {**arrays, **changes.get("arrays", {})}  # type: ignore[dict-item]
    params = changes.get("params", manifest["params"])
    save_artifact(directory, "recommender", params, arrays, state, {},  # type: ignore[arg-type]
                  extra={"model": manifest["model"]})


def test_round_trip_and_overwrite(tmp_path: Path) -> None:
    path = saved(tmp_path)
    saved(tmp_path, neighbours=3)  # overwrite in place
    assert load(path).get_params()["neighbours"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left behind


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "state.json").write_text("{}"), "checksum mismatch"),
    (lambda d: (d / "arrays.safetensors").write_bytes(b"\0" * 10), "checksum mismatch"),
    (lambda d: (d / "arrays.safetensors").unlink(), "missing arrays.safetensors"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "corrupt manifest"),
    (lambda d: _edit_manifest(d, lambda m: m["params"].update(neighbours=99)),
     "manifest is corrupt or was changed"),
    (lambda d: _edit_manifest(d, lambda m: m.pop("files"), rechecksum=True),
     "does not list"),
    (lambda d: _edit_manifest(d, lambda m: m.update(format_version=1), rechecksum=True),
     "format version 1"),
])
def test_damaged_directories_are_refused(tmp_path: Path, damage, message: str) -> None:
    path = saved(tmp_path)
    damage(path)
    with pytest.raises(ArtifactError, match=message):
        load(path)


def _edit_manifest(directory: Path, edit, rechecksum: bool = False) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    if rechecksum:
        manifest["checksum"] = artifacts._manifest_checksum(manifest)
    path.write_text(json.dumps(manifest))


def test_wrong_shapes_nan_and_unknown_params_are_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    rewrite(path, arrays={"model.popularity": np.zeros(3)})
    with pytest.raises(ArtifactError, match="shape"):
        load(path)
    path = saved(tmp_path, "nan")
    _, arrays, _ = load_artifact(path, "recommender")
    rewrite(path, arrays={"model.popularity": np.full_like(arrays["model.popularity"], np.nan)})
    with pytest.raises(ArtifactError, match="non-finite"):
        load(path)
    path = saved(tmp_path, "params")
    rewrite(path, params={"neighbours": 10, "decay": 0.9, "colour": "red"})
    with pytest.raises(ArtifactError, match="unknown parameter"):
        load(path)
    path = saved(tmp_path, "indices")
    _, arrays, _ = load_artifact(path, "recommender")
    rewrite(path, arrays={"model.similarity.indices":
                          arrays["model.similarity.indices"] + 10_000})
    with pytest.raises(ArtifactError, match="inconsistent"):
        load(path)


def test_an_interrupted_overwrite_keeps_the_old_model(tmp_path: Path, monkeypatch) -> None:
    path = saved(tmp_path, neighbours=7)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(artifacts, "_write_synced", crash)
    with pytest.raises(OSError, match="disk full"):
        saved(tmp_path, neighbours=3)
    monkeypatch.undo()
    assert load(path).get_params()["neighbours"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_concurrent_writers_never_leave_a_mixed_model(tmp_path: Path) -> None:
    models = {n: make_model("itemknn", neighbours=n).fit(shop(seed=n)) for n in (2, 9)}
    expected = {n: m.recommend(k=5)[0] for n, m in models.items()}
    target = tmp_path / "shared"
    save(models[2], target)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for _ in range(8):
                save(models[n], target)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in models]
    for t in threads:
        t.start()
    loads = 0
    while any(t.is_alive() for t in threads) or loads < 3:
        model = load(target)
        n = model.get_params()["neighbours"]
        np.testing.assert_array_equal(model.recommend(k=5)[0], expected[n])
        loads += 1
    for t in threads:
        t.join()
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]


def test_a_directory_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.txt").write_text("mine")
    model = make_model("pop").fit(shop())
    with pytest.raises(ArtifactError, match="not a funnelprint model"):
        save(model, precious)
    assert [p.name for p in precious.iterdir()] == ["chapter1.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    save(model, empty)  # an empty directory is fine
    assert load(empty).key == "pop"
