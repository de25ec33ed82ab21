"""rankroute's own long format: one row per outcome (Parquet, JSONL, JSON or CSV), or an export directory.

A file row carries the Outcome columns plus its prompt's columns (`text` or `prompt_text`, `dataset`,
optional `category`, `split`, `turns`, `reference`, `metadata`). A directory holds `prompts.parquet` and
`outcomes.parquet` (+ optional `models.parquet`, `battles.parquet`): what `OutcomeStore.export_parquet`
writes.

Rows named in errors are the user's rows: the line number in JSONL, the 1-based data row (header not
counted) in CSV, Parquet and JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rankroute.data.errors import DataError
from rankroute.data.frames import OUTCOME_COLUMNS, PROMPT_COLUMNS
from rankroute.data.importers import formats
from rankroute.data.importers.base import LoadedData, model_cards, read_parquet
from rankroute.data.prices import PriceTable
from rankroute.data.records import ModelCard

FORMAT = formats.LONGFORM
FILE_SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json", ".csv")
SOURCE_ROW = "_source_row"


def read_rows(path: Path) -> pd.DataFrame:
    """A long-format file as a frame with a `_source_row` column giving each row's place in the file."""
    if not path.is_file():
        raise DataError("file not found", source=str(path))
    if path.stat().st_size == 0:
        raise DataError("the file is empty", source=str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix == ".json":
        frame = _read_json_array(path)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read CSV: {exc}", source=str(path)) from exc
    elif suffix == ".parquet":
        frame = read_parquet(path)
    else:
        raise DataError(f"unknown file type {suffix!r}", source=str(path), hint=f"use one of {FILE_SUFFIXES}")
    frame[SOURCE_ROW] = range(1, len(frame) + 1)
    return frame


def _read_jsonl(path: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON line: {exc.msg}", source=str(path), row=line_number) from exc
            if not isinstance(record, dict):
                raise DataError("each line must be a JSON object", source=str(path), row=line_number)
            record[SOURCE_ROW] = line_number
            records.append(record)
    if not records:
        raise DataError("the file holds no records", source=str(path))
    return pd.DataFrame.from_records(records)


def _read_json_array(path: Path) -> pd.DataFrame:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON: {exc.msg} (line {exc.lineno})", source=str(path)) from exc
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise DataError("expected a JSON array of objects", source=str(path), hint="or use JSONL")
    return pd.DataFrame.from_records(document)


def load_long(path: Path, prices: PriceTable) -> LoadedData:
    if path.is_dir():
        return _load_export_dir(path)
    source = str(path)
    frame = read_rows(path)
    if "text" not in frame.columns:
        if "prompt_text" not in frame.columns:
            raise DataError(
                "missing required column 'text' (or 'prompt_text'): each row needs its prompt's text",
                source=source,
                column="text",
            )
        frame = frame.rename(columns={"prompt_text": "text"})
    prompt_columns = [c for c in PROMPT_COLUMNS if c in frame.columns] + [SOURCE_ROW]
    outcome_columns = [c for c in OUTCOME_COLUMNS if c in frame.columns] + [SOURCE_ROW]
    models: list[str] = list(frame["model"].dropna().astype(str)) if "model" in frame.columns else []
    return LoadedData.validated(
        frame[prompt_columns],
        frame[outcome_columns],
        model_cards(models, prices),
        source=source,
        format=FORMAT,
    )


def _load_export_dir(directory: Path) -> LoadedData:
    prompts = read_parquet(directory / "prompts.parquet")
    outcomes = read_parquet(directory / "outcomes.parquet")
    cards = _read_cards(directory / "models.parquet")
    names = {card.name for card in cards}
    cards += [ModelCard(name=m) for m in sorted(set(outcomes["model"].astype(str)) - names)]
    battles_path = directory / "battles.parquet"
    battles = (
        read_parquet(battles_path).drop(columns=["battle_id"], errors="ignore")
        if battles_path.is_file()
        else None
    )
    return LoadedData.validated(
        prompts, outcomes, cards, source=str(directory), format=FORMAT, battles=battles
    )


def _read_cards(path: Path) -> list[ModelCard]:
    if not path.is_file():
        return []
    frame = read_parquet(path)
    cards: list[ModelCard] = []
    for position, row in enumerate(frame.to_dict(orient="records"), start=1):
        values = {str(k): (None if pd.isna(v) else v) for k, v in row.items()}
        try:
            cards.append(ModelCard(**values))
        except ValueError as exc:
            raise DataError(f"bad model card: {exc}", source=str(path), row=position) from exc
    return cards
