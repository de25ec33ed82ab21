"""Help is quick: listing sub-commands or their options imports none of what they run on (pandas, DuckDB)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rankroute.cli import SUBCOMMANDS, load_subcommand

HEAVY = ("pandas", "duckdb", "numpy", "sklearn", "httpx", "rankroute.data.store")

PROBE = """
import sys
sys.argv = ["rankroute", *sys.argv[1:]]
from rankroute.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = [name for name in {heavy!r} if name in sys.modules]
print("HEAVY", ",".join(heavy))
"""


def loaded_heavy_modules(*args: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    marker = done.stdout.rsplit("HEAVY ", 1)[1].strip()
    return [name for name in marker.split(",") if name], done.stdout


def test_top_level_help_imports_no_subcommand() -> None:
    heavy, shown = loaded_heavy_modules("--help")
    assert heavy == []
    for name, (_, _, summary) in SUBCOMMANDS.items():
        assert name in shown and summary.split()[0] in shown


@pytest.mark.parametrize(
    "args", [(name,) for name in sorted(SUBCOMMANDS)] + [("route", "eval"), ("rank", "pairwise")]
)
def test_subcommand_help_imports_none_of_what_the_command_runs_on(args: tuple[str, ...]) -> None:
    """Commands import pandas, DuckDB and the estimators when they run, not to print their options."""
    heavy, shown = loaded_heavy_modules(*args, "--help")
    assert heavy == []
    assert "--help" in shown


def test_a_subcommand_still_runs_on_what_it_imports_late(tmp_path) -> None:
    """The late imports are there when the command runs: `data info` opens a fresh DuckDB store."""
    heavy, shown = loaded_heavy_modules("data", "info", "--store", str(tmp_path / "fresh.duckdb"))
    assert "duckdb" in heavy and "pandas" in heavy
    assert "outcomes" in shown


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_listed_subcommand_resolves(name: str) -> None:
    command = load_subcommand(name)
    assert command.params or getattr(command, "commands", None), name


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    entry = "import sys\nsys.argv = ['rankroute', 'nosuch']\nfrom rankroute.cli import main\nmain()"
    done = subprocess.run([sys.executable, "-c", entry], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "No such command 'nosuch'" in done.stderr
