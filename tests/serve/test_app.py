"""The HTTP API in-process: events in, profiles and recommendations out, keys, limits,
errors, reload and metrics."""

from __future__ import annotations

import shutil
import uuid

import pytest

from funnelprint.serve.app import Settings, create_app
from tests.serve.conftest import READ, WRITE, TestClient, event


def post(client, *events, headers=WRITE):
    return client.post("/v1/events", json={"events": list(events)}, headers=headers)


def test_invalid_events_are_reported_by_index_and_valid_ones_stored(client):
    response = post(client,
                    event("n1", 1, "view", "p0010"),
                    {"user_id": "n1", "ts": 1772359320, "event": "cart", "item_id": "p0010"},
                    event("n1", 3, "view", "p0011") | {"timestamp": "not a time"},
                    event("", 4, "view", "p0011"),
                    event("n1", 5, "teleport", "p0012"),
                    event("n1", 6, "buy", "p0010", event_id=["not", "a", "string"]))
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 3  # an unknown action is kept as its own type, as in files
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (2, "bad_timestamp"), (3, "empty_customer_id"), (5, "bad_event_id")]
    assert "not a time" in body["rejected"][0]["reason"]
    profile = client.get("/v1/customers/n1/profile", headers=READ).json()
    assert profile["n_events"] == 3


def test_events_without_optional_fields_are_stored_beside_a_refused_one(client):
    response = post(client, event("o1", 1, "view", "p0010", brand="acme"),
                    event("o1", 2, "view", "p0011"),
                    event("o1", 3, "view", "p0012") | {"timestamp": "bad"})
    body = response.json()
    assert body["stored"] == 2, body
    assert [r["index"] for r in body["rejected"]] == [2]


def test_a_batch_without_any_valid_event_is_answered_event_by_event(client):
    response = post(client, {"customer_id": "x"}, {"nothing": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 0 and [r["index"] for r in body["rejected"]] == [0, 1]


def test_retried_batches_with_event_ids_are_stored_once(client):
    batch = [event("r1", i, "view", f"p00{10 + i}", event_id=f"r1-{i}") for i in range(4)]
    first, again = post(client, *batch).json(), post(client, *batch).json()
    assert (first["stored"], first["duplicates"]) == (4, 0)
    assert (again["stored"], again["duplicates"]) == (0, 4)
    assert client.get("/v1/customers/r1/profile", headers=READ).json()["n_events"] == 4


def test_unknown_products_are_stored_and_counted(client):
    body = post(client, event("u9", 1, "view", "never-seen"), event("u9", 2, "view", "p0001")
                ).json()
    assert (body["stored"], body["unknown_products"]) == (2, 1)
    profile = client.get("/v1/customers/u9/profile", headers=READ).json()
    assert profile["n_events"] == 2
    metrics = client.get("/metrics", headers=READ).text
    assert "funnelprint_unknown_product_events_total 1.0" in metrics


def test_profile_and_recommendations_follow_new_events(client):
    post(client, event("fresh", 1, "view", "p0010"))
    before = client.get("/v1/customers/fresh/profile", headers=READ).json()
    recs_before = client.get("/v1/customers/fresh/recommendations?k=5", headers=READ).json()
    post(client, *[event("fresh", 2 + i, a, p) for i, (a, p) in enumerate(
        [("view", "p0050"), ("add_to_cart", "p0050"), ("purchase", "p0050"), ("view", "p0051"),
         ("view", "p0052"), ("add_to_cart", "p0052"), ("view", "p0053")])])
    after = client.get("/v1/customers/fresh/profile", headers=READ).json()
    recs_after = client.get("/v1/customers/fresh/recommendations?k=5", headers=READ).json()
    assert (before["n_events"], after["n_events"]) == (1, 8)
    assert before["traits"] != after["traits"]
    assert abs(sum(t["share"] for t in after["traits"]) - 1) < 1e-3
    assert set(after) >= {"customer_id", "traits", "segment", "cold_start", "n_events"}
    assert recs_before["items"] != recs_after["items"]
    assert recs_after["model"] == "traits" and len(recs_after["items"]) == 5
    assert all(i["reason"] for i in recs_after["items"])
    shown = [i["product_id"] for i in recs_after["items"]]
    assert not {"p0010", "p0050", "p0051"} & set(shown)  # seen: left out by default
    kept = client.get("/v1/customers/fresh/recommendations?k=100&exclude=none",
                      headers=READ).json()
    assert "p0050" in [i["product_id"] for i in kept["items"]]
    unbought = client.get("/v1/customers/fresh/recommendations?k=100&exclude=purchased",
                          headers=READ).json()
    assert "p0050" not in [i["product_id"] for i in unbought["items"]]
    assert client.get("/v1/customers/fresh/recommendations?exclude=everything",
                      headers=READ).status_code == 422


def test_known_customers_are_served_from_the_fitted_history(client):
    profile = client.get("/v1/customers/u0001/profile", headers=READ).json()
    assert profile["n_events"] == 0 and profile["fitted_events"] > 0
    similar = client.get("/v1/customers/u0001/similar?k=3", headers=READ).json()
    assert len(similar["customers"]) == 3 and similar["cold_start"] is False
    assert "u0001" not in [c["customer_id"] for c in similar["customers"]]
    assert all(-1 <= c["similarity"] <= 1.0001 for c in similar["customers"])


def test_a_visitor_with_no_events_is_a_cold_start_and_unknown_models_404(client):
    profile = client.get("/v1/customers/nobody/profile", headers=READ).json()
    assert profile["cold_start"] is True and profile["n_events"] == 0
    assert profile["fitted_events"] == 0
    shares = [t["share"] for t in profile["traits"]]
    assert abs(sum(shares) - 1) < 1e-3 and max(shares) < 1
    recs = client.get("/v1/customers/nobody/recommendations?k=5", headers=READ).json()
    assert len(recs["items"]) == 5 and all(i["reason"] for i in recs["items"])
    similar = client.get("/v1/customers/nobody/similar?k=3", headers=READ).json()
    # a guess is like nobody: said, not answered with other guesses at 1.000
    assert similar["cold_start"] is True and similar["customers"] == []
    assert similar["known_events"] == 0 and "cold start" in similar["note"]
    response = client.get("/v1/customers/u0001/recommendations?model=nope", headers=READ)
    assert response.status_code == 404 and response.json()["error"] == "unknown_model"


def test_traits_segments_and_models(client):
    traits = client.get("/v1/traits", headers=READ).json()
    segments = client.get("/v1/segments", headers=READ).json()
    models = client.get("/v1/models", headers=READ).json()
    assert len(traits) == 4 and all("name" in t for t in traits)
    assert sum(s["customers"] for s in segments) > 0
    assert [m["name"] for m in models] == ["traits"] and len(models[0]["version"]) == 12


def test_keys_and_scopes(client):
    assert client.get("/v1/traits").status_code == 401
    assert client.get("/v1/traits").headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer " + "x" * 24}
    assert client.get("/v1/traits", headers=bad).status_code == 401
    assert post(client, event("a", 1, "view", "p1"), headers=READ).status_code == 403
    assert client.post("/v1/admin/reload", headers=READ).status_code == 403
    assert client.get("/v1/traits", headers=WRITE).status_code == 200  # write implies read
    assert client.get("/healthz").status_code == 200  # probes need no key
    assert client.get("/readyz").json() == {"status": "ready"}


def test_no_key_refuses_to_start_unless_insecure(model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("FUNNELPRINT_API_KEYS", raising=False)
    settings = Settings(models=(str(model_dir),), store=f"sqlite:///{tmp_path / 'e.sqlite'}")
    with pytest.raises(ValueError, match="no API key"):
        create_app(settings)
    insecure = Settings(**{**settings.__dict__, "insecure": True})
    with TestClient(create_app(insecure)) as open_client:
        assert open_client.get("/v1/traits").status_code == 200


def test_limits(client):
    too_many = [event("b", i % 60, "view", "p0001") for i in range(51)]
    response = post(client, *too_many)
    assert response.status_code == 413 and response.json()["error"] == "batch_too_large"
    big = {"events": [event("b", 1, "view", "p" + "0" * 70_000)]}
    response = client.post("/v1/events", json=big, headers=WRITE)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_errors_are_json_without_internals(client):
    for response in (
        client.post("/v1/events", content=b"{not json", headers={
            **WRITE, "content-type": "application/json"}),
        client.post("/v1/events", json={"events": "nope"}, headers=WRITE),
        client.get("/v1/customers/u0001/recommendations?k=0", headers=READ),
        client.get("/v1/customers/u0001/recommendations?k=abc", headers=READ),
        client.get("/v2/anything", headers=READ),
        client.delete("/v1/events", headers=WRITE),
    ):
        assert 400 <= response.status_code < 500
        body = response.json()
        assert set(body) == {"error", "detail"}
        assert "Traceback" not in response.text and "/work" not in response.text


def test_no_cors_unless_configured(client, model_dir, tmp_path):
    origin = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    response = client.options("/v1/traits", headers=origin)
    assert "access-control-allow-origin" not in response.headers
    settings = Settings(models=(str(model_dir),), store=f"sqlite:///{tmp_path / 'c.sqlite'}",
                        cors_origins=("https://shop.example",))
    with TestClient(create_app(settings)) as cors:
        response = cors.options("/v1/traits", headers=origin)
        assert response.headers["access-control-allow-origin"] == "https://shop.example"


def test_reload_swaps_models_and_keeps_them_on_failure(client, model_dir, tmp_path):
    elsewhere = shutil.copytree(model_dir, tmp_path / "elsewhere")
    link = model_dir.parent / f"link-{uuid.uuid4().hex[:8]}"
    link.symlink_to(elsewhere)  # beside the models, but it leads elsewhere
    refusals = [client.post("/v1/admin/reload", json={"models": [path]}, headers=WRITE)
                for path in (str(elsewhere), str(link), str(model_dir.parent / "missing"),
                             str(model_dir / "state.json"), "/etc", "")]
    assert {r.status_code for r in refusals} == {403}
    assert len({r.text for r in refusals}) == 1  # one answer: nothing said of what exists
    link.unlink()
    copy = shutil.copytree(model_dir, model_dir.parent / f"copy-{uuid.uuid4().hex[:8]}")
    ok = client.post("/v1/admin/reload", json={"models": [str(copy)]}, headers=WRITE)
    assert ok.status_code == 200 and ok.json()[0]["path"] == copy.name  # never where it lies
    (copy / "arrays.safetensors").write_bytes(b"broken")
    failed = client.post("/v1/admin/reload", headers=WRITE)
    assert failed.status_code == 422 and failed.json()["error"] == "reload_failed"
    assert "checksum" in failed.json()["detail"] or "arrays" in failed.json()["detail"]
    models = client.get("/v1/models", headers=READ).json()
    assert models[0]["path"] == copy.name  # the loaded copy still serves
    assert client.get("/v1/customers/u0001/profile", headers=READ).status_code == 200
    metrics = client.get("/metrics", headers=READ).text
    assert 'funnelprint_model_reloads_total{outcome="failed"} 1.0' in metrics


def test_metrics_count_requests_per_route(client):
    client.get("/v1/customers/u0001/profile", headers=READ)
    post(client, event("m", 1, "view", "p0001"), event("m", 2, "view", "p0002"))
    text = client.get("/metrics", headers=READ).text
    assert ('funnelprint_http_requests_total{method="GET",route='
            '"/v1/customers/{customer_id}/profile",status="200"} 1.0') in text
    assert "funnelprint_http_request_duration_seconds_bucket" in text
    assert "funnelprint_events_stored_total 2.0" in text
    assert 'funnelprint_model_info{key="traits",name="traits"' in text


def test_openapi_documents_the_versioned_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/customers/{customer_id}/profile",
            "/v1/customers/{customer_id}/recommendations", "/v1/customers/{customer_id}/similar",
            "/v1/traits", "/v1/segments", "/v1/admin/reload", "/healthz", "/readyz",
            "/metrics"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_worker_processes_build_the_app_from_the_settings_passed_in_the_environment(
        model_dir, tmp_path, keys, monkeypatch):
    from funnelprint.serve.app import SETTINGS_ENV, app_from_env

    settings = Settings(models=(str(model_dir),), store=f"sqlite:///{tmp_path / 'w.sqlite'}",
                        max_batch=7, cors_origins=("https://a.example",), threads=2)
    assert Settings.from_json(settings.to_json()) == settings
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    # the worker's JSON logging would stay installed for the rest of the test session
    monkeypatch.setattr("funnelprint.serve.app.configure_logging", lambda *a, **k: None)
    with TestClient(app_from_env()) as worker:
        too_many = [event("b", i, "view", "p0001") for i in range(8)]
        assert post(worker, *too_many).status_code == 413


def test_a_sequential_model_serves_beside_the_trait_model(model_dir, markov_dir, tmp_path,
                                                          keys):
    settings = Settings(models=(str(model_dir), str(markov_dir)),
                        store=f"sqlite:///{tmp_path / 's.sqlite'}")
    with TestClient(create_app(settings)) as both:
        assert [m["name"] for m in both.get("/v1/models", headers=READ).json()] == [
            "traits", "markov"]
        post(both, event("seq", 1, "view", "p0010"), event("seq", 2, "view", "p0010"),
             event("seq", 3, "add_to_cart", "p0011"))
        recs = both.get("/v1/customers/seq/recommendations?model=markov&k=4",
                        headers=READ).json()
        assert recs["model"] == "markov" and len(recs["items"]) == 4
        assert all(i["reason"] == "ranked by markov" for i in recs["items"])
        post(both, event("seq2", 1, "view", "p0090"), event("seq2", 2, "purchase", "p0091"))
        other = both.get("/v1/customers/seq2/recommendations?model=markov&k=4",
                         headers=READ).json()
        assert other["items"] != recs["items"]  # the stored history steers the ranking
        known = both.get("/v1/customers/u0001/recommendations?model=markov", headers=READ)
        assert known.status_code == 200 and len(known.json()["items"]) == 10
        default = both.get("/v1/customers/seq/recommendations", headers=READ).json()
        assert default["model"] == "traits"


def test_a_store_that_does_not_answer_is_503_with_a_retry_hint(client):
    client.app.state.service.store.close()
    response = post(client, event("x", 1, "view", "p0001"))
    assert response.status_code == 503 and response.json()["error"] == "store_unavailable"
    assert response.headers["retry-after"] == "1"
    assert client.get("/readyz").status_code == 503


def test_nul_characters_are_refused_per_event_on_every_store(client):
    batch = {"events": [
        {"customer_id": "c\x00x", "timestamp": 1772359200, "action": "view",
         "product_id": "p0001"},
        {"event_id": "id\x00", "customer_id": "c-ok", "timestamp": 1772359260,
         "action": "view", "product_id": "p0001"},
        {"customer_id": "c-ok", "timestamp": 1772359320, "action": "view",
         "product_id": "p0002", "brand": "b\x00"},
        {"customer_id": "c-ok", "timestamp": 1772359380, "action": "view",
         "product_id": "p0003"}]}
    answer = client.post("/v1/events", json=batch, headers=WRITE)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stored"] == 1
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "bad_value"), (1, "bad_value"), (2, "bad_value")]
    profile = client.get("/v1/customers/c%00x/profile", headers=READ)
    assert profile.status_code == 422 and profile.json()["error"]
    assert client.get("/v1/customers/c-ok/profile", headers=READ).json()["n_events"] == 1


def test_one_key_may_have_only_so_many_writes_running():
    """The Guard, alone: a second write of one key while the first runs gets 429; another
    key, or the same key once the first is answered, is let through."""
    import asyncio

    from funnelprint.serve.auth import KeyRing
    from funnelprint.serve.guard import Guard

    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    other = "o" * 24
    guard = Guard(slow_app, KeyRing({WRITE["Authorization"][7:]: "write", other: "write"}),
                  writes_per_key=1)

    async def call(key: str) -> int:
        statuses = []

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "method": "POST", "path": "/v1/events",
                 "raw_path": b"/v1/events", "headers": [
                     (b"authorization", f"Bearer {key}".encode())]}
        await guard(scope, None, send)
        return statuses[0]

    async def scenario() -> list[int]:
        key = WRITE["Authorization"][7:]
        first = asyncio.create_task(call(key))
        await asyncio.sleep(0.01)
        second = await call(key)
        third = asyncio.create_task(call(other))
        await asyncio.sleep(0.01)
        release.set()
        return [await first, second, await third, await call(key)]

    assert asyncio.run(scenario()) == [200, 429, 200, 200]
