"""The command line starts without the heavy libraries only some commands need."""

import subprocess
import sys


def test_the_command_line_imports_no_torch_fastapi_psycopg_or_gensim():
    heavy = ("torch", "fastapi", "psycopg", "gensim", "uvicorn")
    code = ("import sys, funnelprint.cli; "
            f"print(sorted(set({heavy!r}) & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
