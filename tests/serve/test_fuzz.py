"""Property-based requests over the service's own OpenAPI schema: malformed, oversized,
unauthenticated and wrongly typed requests get a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import READ, WRITE

EXAMPLES = 300
FINITE = st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry
JSON_LEAVES = st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=20)
ANY_JSON = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
AUTH = st.sampled_from([{}, READ, WRITE, {"Authorization": "Bearer " + "x" * 24},
                        {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}])


def from_schema(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0
                ) -> st.SearchStrategy[Any]:
    """Values following a JSON schema (the subset FastAPI writes), sometimes anything."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(spec["components"]["schemas"][name], spec, depth)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec, depth) for s in schema["anyOf"]])
    kinds = schema.get("type", "object")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    options = [_of_type(kind, schema, spec, depth) for kind in kinds]
    return st.one_of(options) if depth > 2 else st.one_of(*options, ANY_JSON)


def _of_type(kind: str, schema: dict[str, Any], spec: dict[str, Any], depth: int
             ) -> st.SearchStrategy[Any]:
    if kind == "string":
        return st.text(max_size=schema.get("maxLength", 40) + 2)
    if kind == "integer":
        return st.integers(min_value=-5, max_value=2_000_000_000)
    if kind == "number":
        return FINITE | st.integers()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec, depth + 1), max_size=8)
    properties = schema.get("properties", {})
    fields = {k: from_schema(v, spec, depth + 1) for k, v in properties.items()}
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def requests(draw: st.DrawFn, spec: dict[str, Any]) -> tuple[str, str, dict, Any]:
    path, methods = draw(st.sampled_from(sorted(spec["paths"].items())))
    method, operation = draw(st.sampled_from(sorted(methods.items())))
    url = path
    query: dict[str, Any] = {}
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            value = draw(st.text(min_size=1, max_size=30) | st.sampled_from(["u0001", "n1"]))
            url = url.replace("{" + param["name"] + "}", quote(value, safe=""))
        elif param["in"] == "query" and draw(st.booleans()):
            value = draw(from_schema(param.get("schema", {}), spec) | st.text(max_size=10))
            query[param["name"]] = json.dumps(value) if isinstance(value, list | dict) else value
    if query:
        url += "?" + urlencode(query)
    body = None
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]["application/json"]["schema"]
        body = draw(from_schema(content, spec) | st.binary(max_size=30)
                    | st.just(b"{" * 5000) | st.just({"events": [{}] * 60}))
    return method.upper(), url, draw(AUTH), body


def test_no_request_gets_a_server_error(client):
    spec = client.get("/openapi.json").json()
    tried: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(requests(spec))
    def check(request: tuple[str, str, dict, Any]) -> None:
        method, url, headers, body = request
        if isinstance(body, bytes):
            response = client.request(method, url, headers={
                **headers, "content-type": "application/json"}, content=body)
        elif body is not None:
            response = client.request(method, url, headers=headers, json=body)
        else:
            response = client.request(method, url, headers=headers)
        tried.append(response.status_code)
        assert response.status_code < 500, (method, url, body, response.text)
        if response.status_code >= 400:
            payload = response.json()
            assert set(payload) == {"error", "detail"}, response.text
            assert "Traceback" not in response.text

    check()
    print(f"{len(tried)} requests tried; statuses {sorted(set(tried))}")
    assert len(tried) >= EXAMPLES
    assert {401, 403, 404, 413, 422} <= set(tried)  # the generator reached every refusal
