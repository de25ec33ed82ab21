"""`rankroute data ...`: import, inspect and export the outcome store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rankroute.data.importers.formats import FORMATS

data_app = typer.Typer(help="Import, inspect and export outcome data.", no_args_is_help=True)
console = Console()

StoreOption = typer.Option(
    None, "--store", help="DuckDB file or postgresql:// URL (default: $RANKROUTE_STORE or ~/.rankroute)"
)


@data_app.command("import")
def import_data(
    path: Path = typer.Argument(..., help="file or folder to import"),
    format: str = typer.Option("auto", "--format", help=f"auto, or one of: {', '.join(FORMATS)}"),
    price_table: Path | None = typer.Option(
        None, "--price-table", help="YAML or CSV price table (default: the one shipped with rankroute)"
    ),
    annotator: str | None = typer.Option(
        None, "--annotator", help="AlpacaEval judge (default: weighted_alpaca_eval_gpt4_turbo)"
    ),
    store: str | None = StoreOption,
) -> None:
    """Import outcomes into the store in one transaction: all of it, or nothing when anything is wrong."""
    from rankroute.data import OutcomeStore, import_path

    with OutcomeStore(store) as db, console.status(f"importing {path} ..."):
        report = import_path(db, path, format=format, price_table=price_table, annotator=annotator)
    table = Table(title=f"imported ({report.format})", caption=f"from {report.source}\ninto {db.location}")
    table.add_column("table")
    table.add_column("inserted", justify="right")
    table.add_column("already stored", justify="right")
    table.add_row("prompts", f"{report.prompts.inserted:,}", f"{report.prompts.skipped:,}")
    table.add_row("outcomes", f"{report.outcomes.inserted:,}", f"{report.outcomes.skipped:,}")
    table.add_row("model cards", f"{report.models:,}", "")
    if report.battles:
        table.add_row("battles", f"{report.battles:,}", "")
    console.print(table)
    for reason, count in report.dropped.items():
        if count:
            console.print(f"left out {count:,} source rows: {reason}")


@data_app.command("info")
def info(store: str | None = StoreOption) -> None:
    """Show what the store holds."""
    from rankroute.data import OutcomeStore

    with OutcomeStore(store) as db:
        table = Table(title=f"store {db.location}")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, count in db.counts().items():
            table.add_row(name, f"{count:,}")
        console.print(table)


@data_app.command("export")
def export(
    directory: Path = typer.Argument(..., help="folder to write prompts/outcomes/models/battles.parquet"),
    store: str | None = StoreOption,
) -> None:
    """Write the store as Parquet in rankroute's long format (`rankroute data import DIR` reads it back)."""
    from rankroute.data import OutcomeStore

    with OutcomeStore(store, read_only=True) as db:
        written = db.export_parquet(directory)
    for table, target in written.items():
        console.print(f"{table}: {target}")
