"""The API keeps its own OpenAPI contract: schemathesis, with every check it has (server
errors, status codes, content types, headers and bodies against the schema, valid data
accepted and invalid data refused, authentication not ignored, Allow on 405...), sends
generated requests to a real ``funnelprint serve`` process on each store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from funnelprint.serve.testing import free_port, start_service
from tests.serve.conftest import READ_KEY, WRITE_KEY

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Generated requests per operation and phase (about 500 in all, half a minute).
EXAMPLES = 50


def test_the_server_keeps_its_openapi_contract(model_dir, store_url, tmp_path):
    port = free_port()
    env = {**os.environ, "FUNNELPRINT_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read"}
    server = start_service(["--model", str(model_dir), "--store", store_url], port,
                           tmp_path / "server.log", env=env)
    try:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file",
             str(CONFIG), "run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
             "--header", f"Authorization: Bearer {WRITE_KEY}", "--max-examples",
             str(EXAMPLES), "--seed", "2", "--workers", "1", "--request-timeout", "20",
             "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if "generated" in line]
    print(*summary)
    assert run.returncode == 0, output[-6000:]
    assert "No issues found" in output
