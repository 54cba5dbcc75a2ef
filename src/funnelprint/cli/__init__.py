"""The ``funnelprint`` command: one module per command group, one error path.

Known failures (bad input, a bad model directory, an unknown customer) print one line and
exit 2; anything unexpected prints one line and a hint to rerun with ``-v``, and exits 1.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer

# Typer carries its own copy of click: usage errors are that copy's exceptions.
from typer._click.exceptions import ClickException as TyperClickException

from funnelprint.cli import data, evaluate, fit, profiles, recommend, report, serve
from funnelprint.cli.common import KNOWN_ERRORS, err_console, setup_logging

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Customer trait profiles and sequence-aware recommendations from funnel event logs.",
)


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Log progress; show tracebacks of unexpected errors"),
) -> None:
    setup_logging(verbose)


for group in (data, fit, profiles, recommend, evaluate, report, serve):
    group.register(app)


def run(argv: Sequence[str]) -> int:
    """Run the command line ``argv``; returns the exit code."""
    argv = list(argv) or ["--help"]
    verbose = "-v" in argv or "--verbose" in argv
    try:
        result = app(argv, prog_name="funnelprint", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        return 130
    except TyperClickException as exc:
        message = " ".join(exc.format_message().split())
        err_console.print(f"[bold red]error:[/] {message} (see funnelprint --help)",
                          highlight=False)
        return 2
    except KNOWN_ERRORS as exc:
        err_console.print(f"[bold red]error:[/] {one_line(exc)}", highlight=False)
        return 2
    except Exception as exc:
        if verbose:
            logging.getLogger("funnelprint").exception("unexpected error")
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: "
                          f"{one_line(exc)}" + ("" if verbose else
                                                " (rerun with -v for the traceback)"),
                          highlight=False)
        return 1
    return result if isinstance(result, int) else 0


def one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def main() -> None:
    sys.exit(run(sys.argv[1:]))


__all__ = ["app", "main", "run"]
