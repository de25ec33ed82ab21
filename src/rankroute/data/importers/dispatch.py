"""Which reader a path needs, and the two entry points: read (`load_outcomes`) and store (`import_path`)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from rankroute.data.errors import DataError
from rankroute.data.importers import alpacaeval, longform, routellm, routerbench
from rankroute.data.importers.base import ImportReport, LoadedData, PriceTableLike, resolve_price_table
from rankroute.data.importers.formats import FORMATS
from rankroute.data.records import ModelCard
from rankroute.data.store import OutcomeStore

FOLDER_FORMATS = (routerbench.SUBSET_FORMAT, routellm.FORMAT, alpacaeval.FORMAT)


def detect_format(path: Path) -> str:
    """Name the format of `path` from its layout and column names (cheap: headers and schemas only)."""
    if path.is_dir():
        if (path / "judgments.parquet").is_file() and (path / "outputs.parquet").is_file():
            return alpacaeval.FORMAT
        prompts = path / "prompts.parquet"
        if prompts.is_file() and (path / "outcomes.parquet").is_file():
            columns = set(pq.read_schema(prompts).names)
            if routerbench.ORACLE in columns:
                return routerbench.SUBSET_FORMAT
            if "contaminated" in columns:
                return routellm.FORMAT
            return longform.FORMAT
        raise DataError(
            "cannot tell the format of this directory: it has no prompts.parquet + outcomes.parquet "
            "(rankroute export) nor judgments.parquet + outputs.parquet (AlpacaEval)",
            source=str(path),
            hint=f"pass --format, one of {', '.join(FORMATS)}",
        )
    if not path.exists():
        raise DataError("no such file or directory", source=str(path))
    if path.stat().st_size == 0:
        raise DataError("the file is empty", source=str(path))
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return routerbench.WIDE_FORMAT
    if suffix == ".csv":
        try:
            header = list(pd.read_csv(path, nrows=0).columns)
        except pd.errors.EmptyDataError as exc:
            raise DataError("the file is empty", source=str(path)) from exc
        return routerbench.WIDE_FORMAT if routerbench.is_wide_table(header) else longform.FORMAT
    if suffix == ".parquet":
        try:
            names = pq.read_schema(path).names
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read Parquet: {exc}", source=str(path)) from exc
        if routerbench.is_wide_table(names):
            raise DataError(
                "this Parquet file holds RouterBench's wide table; save it as .pkl or .csv",
                source=str(path),
            )
        return longform.FORMAT
    if suffix in longform.FILE_SUFFIXES:
        return longform.FORMAT
    raise DataError(
        f"unknown file type {suffix or '(no suffix)'!r}",
        source=str(path),
        hint=f"use .parquet, .jsonl, .json, .csv or .pkl, or pass --format, one of {', '.join(FORMATS)}",
    )


def load_outcomes(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    price_table: PriceTableLike = None,
    annotator: str | None = None,
) -> LoadedData:
    """Read and validate prompts, outcomes and model cards from `path`, touching no store.

    `format` is "auto" or one of FORMATS; `price_table` (a PriceTable or a YAML/CSV path, default
    `PriceTable.default()`) prices sources without cost; `annotator` picks AlpacaEval's judge.
    """
    path = Path(path)
    if format == "auto":
        format = detect_format(path)
    elif format not in FORMATS:
        raise DataError(f"unknown format {format!r}", hint=f"use auto or one of {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError("no such file or directory", source=str(path))
    prices = resolve_price_table(price_table)
    if format in FOLDER_FORMATS and not path.is_dir():
        raise DataError(f"format {format!r} reads a folder, not a file", source=str(path))
    if format == routerbench.WIDE_FORMAT and path.is_dir():
        raise DataError("format 'routerbench' reads a .pkl or .csv file, not a folder", source=str(path))
    if format == longform.FORMAT:
        return longform.load_long(path, prices)
    if format == routerbench.WIDE_FORMAT:
        return routerbench.load_wide(path, prices)
    if format == routerbench.SUBSET_FORMAT:
        return routerbench.load_subset(path, prices)
    if format == routellm.FORMAT:
        return routellm.load_routellm(path, prices)
    return alpacaeval.load_alpacaeval(path, prices, annotator)


def import_path(
    store: OutcomeStore,
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    price_table: PriceTableLike = None,
    annotator: str | None = None,
) -> ImportReport:
    """Load `path` and write its prompts, outcomes and model cards in ONE store transaction.

    Nothing is written when anything is wrong (bad row, clash with stored data); re-importing the same
    data inserts nothing and reports it all as skipped.
    """
    data = load_outcomes(path, format=format, price_table=price_table, annotator=annotator)
    with store.transaction():
        prompts = store.write_prompts(data.prompts, data.source)
        outcomes = store.write_outcomes(data.outcomes, data.source)
        models = store.write_models(_informative_cards(store, data.models))
        battles = _write_new_battles(store, data)
    return ImportReport(
        source=data.source,
        format=data.format,
        prompts=prompts,
        outcomes=outcomes,
        models=models,
        battles=battles,
        dropped=data.dropped,
    )


def _informative_cards(store: OutcomeStore, cards: list[ModelCard]) -> list[ModelCard]:
    """Cards to write: new models, and cards that say something; a bare card never replaces a stored one."""
    stored = {card.name for card in store.read_models()}
    return [card for card in cards if card.name not in stored or card != ModelCard(name=card.name)]


def _write_new_battles(store: OutcomeStore, data: LoadedData) -> int:
    """Battles have no natural key: write only those not already stored, so a re-import adds nothing."""
    if data.battles is None:
        return 0
    columns = list(data.battles.columns)
    stored = store.read_battles()
    if stored.empty:
        fresh = data.battles
    else:
        keyed = data.battles.merge(stored[columns].drop_duplicates(), on=columns, how="left", indicator=True)
        fresh = keyed[keyed["_merge"] == "left_only"][columns]
    return store.write_battles(fresh, data.source) if not fresh.empty else 0
