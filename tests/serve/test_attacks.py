"""Hostile clients against a real ``funnelprint serve`` process on the loopback, each while
a second client reads profiles at a steady rate: the hostile request is answered quickly
with the right refusal, the valid events beside a bad one are stored, and the steady
client is never stalled. (The exact latency figures are the service bench's; here the
bounds are wide enough for a busy machine and far below the stalls they guard against:
28 s for a 4 MiB batch, 1 s for a 4 MiB body without a key.)"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from funnelprint.serve.store import open_store
from funnelprint.serve.testing import Prober, free_port, start_service
from tests.serve.conftest import READ, READ_KEY, WRITE, WRITE_KEY

#: Longest answer to a hostile request, and longest wait of the steady client meanwhile.
ANSWER_S = 2.0
STALL_S = 1.0
MIB4 = 4 * 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, model_dir, tmp_path_factory):
    """One server per store for the module (one worker: an attack that blocked its event
    loop would show in the steady client's latency)."""
    tmp = tmp_path_factory.mktemp("attacks")
    if request.param == "sqlite":
        store_url = f"sqlite:///{tmp / 'events.sqlite'}"
    else:
        store_url = request.getfixturevalue("postgres").create_database(
            f"attacks_{os.getpid()}")
    port, log = free_port(), tmp / "server.log"
    env = {**os.environ, "FUNNELPRINT_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read"}
    process = start_service(["--model", str(model_dir), "--store", store_url,
                             "--header-timeout", "1", "--body-timeout", "2",
                             "--max-connections", "150"], port, log, env=env)
    yield port, store_url, log
    process.terminate()
    process.wait(timeout=30)


def valid(customer: str, i: int) -> dict:
    return {"event_id": f"{customer[:20]}-{i}", "customer_id": customer,
            "timestamp": 1_772_359_200 + i, "action": "view", "product_id": "p0001"}


def timed(call) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def assert_not_stalled(prober: Prober, start: float, end: float) -> None:
    """Call after the prober stopped: each request due in the window has its answer."""
    during = prober.between(start, end)
    assert during, "the steady client sent nothing meanwhile"
    assert all(status == 200 for _, _, status in during)
    assert max(latency for _, latency, _ in during) < STALL_S, during


def test_hostile_bodies_are_refused_before_they_cost_anything(server):
    port, store_url, _ = server
    url = f"http://127.0.0.1:{port}"
    no_key_lists = b"[" + b",".join([b"[]"] * (MIB4 // 3 - 1)) + b"]"
    ones = b'{"events":[' + b",".join([b"1"] * (MIB4 // 2 - 8)) + b"]}"
    surrogate = ('{"events":[' + ",".join([
        '{"event_id":"s-0","customer_id":"s","timestamp":1772359200,"action":"view",'
        '"product_id":"p0001"}',
        '{"event_id":"s-1","customer_id":"\\ud800","timestamp":1772359201,"action":"view",'
        '"product_id":"p0001"}',
        '{"event_id":"s-2","customer_id":"s","timestamp":1772359202,"action":"view",'
        '"product_id":"p0002","brand":"\\udfff"}']) + "]}").encode()
    with httpx.Client(base_url=url, timeout=30) as client, Prober(port, READ, rate=40) as probe:
        probe.wait_until_answering()  # the steady client is running before the first attack
        start = probe.mark()
        answer, took = timed(lambda: client.post("/v1/events", content=no_key_lists, headers={
            "content-type": "application/json"}))
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
        assert answer.headers["connection"] == "close"  # its unread body is not a next request
        assert took < ANSWER_S
        answer, took = timed(lambda: client.post("/v1/events", content=ones, headers={
            **WRITE, "content-type": "application/json"}))
        assert answer.status_code == 413 and answer.json()["error"] == "batch_too_large"
        assert answer.headers["connection"] == "close"
        assert took < ANSWER_S
        answer, took = timed(lambda: client.post("/v1/events", content=b"x" * (MIB4 + 1),
                                                 headers=WRITE))
        assert answer.status_code == 413 and took < ANSWER_S
        answer = client.post("/v1/events", content=surrogate, headers={
            **WRITE, "content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 1
        assert [r["index"] for r in answer.json()["rejected"]] == [1, 2]
        answer = client.post("/v1/events", json={"events": [valid("n", 0), 7, [], None]},
                             headers=WRITE)
        assert answer.status_code == 200
        assert answer.json()["stored"] == 1
        assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [
            (1, "bad_record"), (2, "bad_record"), (3, "bad_record")]
        long_id = valid("x" * 3000, 1)
        just_over = valid("y", 2) | {"product_id": "p" * 201}  # the id limit, not the text's
        answer = client.post("/v1/events", json={"events": [valid("l", 0), long_id,
                                                            just_over]}, headers=WRITE)
        assert answer.status_code == 200, answer.text  # never a 503 a retry cannot fix
        assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [
            (1, "too_long"), (2, "too_long")]
        answer = client.post("/v1/admin/reload", content=b'{"models": ["\\ud800"]}',
                             headers={**WRITE, "content-type": "application/json"})
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"
        end = probe.mark()
    assert_not_stalled(probe, start, end)
    store = open_store(store_url)
    stored = set(store.event_ids())
    store.close()
    assert {"l-0", "n-0", "s-0"} <= stored
    assert not {"s-1", "s-2", f"{'x' * 20}-1"} & stored


def raw_exchange(port: int, head: bytes, body: bytes) -> bytes:
    """Send one request on a fresh socket and read until the server ends the stream. No
    error is tolerated: a reset while the client still sends, or before it has read the
    answer, is what an immediate close with unread bytes causes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.sendall(body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("answer", ["batch_too_large", "not_found"])
def test_an_early_answer_ends_its_connection_cleanly_and_nothing_follows_it(server, answer):
    """A request answered while the rest of its body is still on the wire (a batch refused
    from its first kilobytes; a route that never reads its body): the one answer says
    ``connection: close``, the server reads and drops the rest of the body, then ends the
    stream, so the client gets the whole answer and no reset; the unread body is never
    taken for the next request's headers (which answered a second, stray 431 that a reused
    connection handed to the client's next request)."""
    port, _, _ = server
    body = b'{"events":[' + b",".join([b"1"] * (MIB4 // 2 - 8)) + b"]}"
    path = "/v1/events" if answer == "batch_too_large" else "/v1/nothing-here"
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: "
            f"{WRITE['Authorization']}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    received = raw_exchange(port, head, body)
    status = b"413" if answer == "batch_too_large" else b"404"
    assert received.startswith(b"HTTP/1.1 " + status), received[:200]
    assert received.lower().count(b"connection: close") == 1
    assert received.count(b"HTTP/1.1 ") == 1, received


def test_ids_the_api_stores_are_ids_it_can_address(server):
    port, _, _ = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for customer in ("a/b", "x" * 200, "é ü", "semi;colon?q=1"):
            answer = client.post("/v1/events", json={"events": [valid(customer, 0)]},
                                 headers=WRITE)
            assert answer.json()["stored"] == 1, (customer, answer.text)
            quoted = httpx.URL(f"/v1/customers/{customer.replace('/', '%2F')}/profile")
            profile = client.get(str(quoted).replace("?", "%3F"), headers=READ)
            assert profile.status_code == 200, (customer, profile.text)
            assert profile.json()["customer_id"] == customer
            assert profile.json()["n_events"] == 1
        refused = client.get("/v1/customers/%FF/profile", headers=READ)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_customer_id"
        assert client.get("/v1/customers/" + "x" * 201 + "/profile",
                          headers=READ).status_code == 422
        moved = client.get("/v1/traits/", headers={**READ, "host": "evil.example"})
        assert moved.status_code == 404 and "location" not in moved.headers


def test_slow_sockets_are_closed_and_never_crowd_out_clients(server):
    port, _, log = server
    sockets = []
    with Prober(port, READ, rate=40) as probe:
        probe.wait_until_answering()
        start = probe.mark()
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", port))
            if i % 4 == 1:  # start a request and never finish its headers
                sock.sendall(b"GET /v1/traits HTTP/1.1\r\nHost: x\r\n")
            elif i % 4 == 2:  # send the headers and a part of the body
                sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: "
                             b"Bearer " + WRITE_KEY.encode() + b"\r\nContent-Length: 100"
                             b"\r\n\r\n{\"events\": [")
            sockets.append(sock)
        deadline = time.monotonic() + 10
        closed = 0
        for sock in sockets:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = sock.recv(4096)
            except ConnectionResetError:  # past the cap: closed at once
                data = b""
            except OSError:  # still open at the deadline
                continue
            closed += 1
            # an end, a 408 for headers or a body too slow, or a 429 for a fifth slow batch
            # of one key (the key's limit: four at once)
            assert data == b"" or data[:12] in (b"HTTP/1.1 408", b"HTTP/1.1 429"), data[:80]
        end = probe.mark()
    assert_not_stalled(probe, start, end)
    for sock in sockets:
        sock.close()
    assert closed == 200  # each closed by the server after the header or body deadline
    assert "connection refused: 150 open" in log.read_text()  # past the cap: closed at once


def test_a_key_file_others_can_read_is_refused(model_dir, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"{WRITE_KEY}:write\n")
    keys.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k != "FUNNELPRINT_API_KEYS"}
    with pytest.raises(RuntimeError, match="chmod 600"):
        start_service(["--model", str(model_dir), "--api-keys", str(keys), "--store",
                       f"sqlite:///{tmp_path / 'e.sqlite'}"], free_port(),
                      tmp_path / "log", env=env, timeout_s=300)
    assert not list(Path(tmp_path).glob("e.sqlite"))  # refused before anything was opened
