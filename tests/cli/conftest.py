from __future__ import annotations

from dataclasses import dataclass

import pytest

from funnelprint.cli import run


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(capsys):
    """Run ``funnelprint ARGS...`` in-process through the same entry point as the command."""

    def _run(args: list[str]) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return _run
