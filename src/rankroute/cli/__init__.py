"""The `rankroute` command: a thin face over the capability folders.

Each sub-command's module is imported only when that sub-command is named, and the modules import
pandas, DuckDB, scikit-learn and the estimators inside the commands (the capability packages load their
names on first use), so `rankroute --help`, `rankroute route eval --help` and shell completion answer
at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

# name -> (module, attribute, one-line help). An attribute that is a Typer app is a command group;
# a function is a single command.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("rankroute.cli.data", "data_app", "Import, inspect and export outcome data."),
    "route": ("rankroute.cli.route", "route_app", "Train, evaluate and apply routers."),
    "eval": ("rankroute.cli.evaluate", "eval_app", "Run LLMs on tasks and record every outcome."),
    "rank": (
        "rankroute.cli.rank",
        "rank_app",
        "Leaderboards with confidence intervals, pairwise ratings, Pareto fronts.",
    ),
    "serve": ("rankroute.cli.serve", "serve_app", "The OpenAI-compatible routing gateway."),
    "loadtest": ("rankroute.cli.loadtest", "loadtest_app", "Load-test any OpenAI-compatible endpoint."),
    "report": (
        "rankroute.cli.loadtest",
        "report_command",
        "Write a self-contained HTML report of what the store holds.",
    ),
    "advise": (
        "rankroute.cli.rank",
        "advise_command",
        "Which models meet your constraints, best first, with evidence.",
    ),
    "demo": (
        "rankroute.cli.evaluate",
        "demo_command",
        "Offline end to end: install local LLMs, evaluate, rank, route, report.",
    ),
}


def load_subcommand(name: str) -> Any:
    """The click command behind `rankroute NAME`, importing its module now."""
    module, attribute, _ = SUBCOMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        return typer.main.get_group(target)
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class DeferredCommand(TyperCommand):
    """Stands in for a sub-command in listings; parsing its arguments loads the real one."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        assert self.name is not None
        return load_subcommand(self.name).make_context(info_name, args, parent=parent, **extra)


class DeferredGroup(TyperGroup):
    """The top-level group: lists SUBCOMMANDS from their one-line help, imports one only when it runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in SUBCOMMANDS:
            return None
        summary = SUBCOMMANDS[cmd_name][2]
        return DeferredCommand(name=cmd_name, help=summary, short_help=summary)


app = typer.Typer(
    name="rankroute",
    cls=DeferredGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def rankroute() -> None:
    """Evaluate, rank and route LLMs, on one outcome store."""


err_console = Console(stderr=True)


def main() -> None:
    """Entry point: bad input ends in one clear line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except Exception as exc:
        from rankroute.data.errors import DataError

        if not isinstance(exc, DataError):
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
